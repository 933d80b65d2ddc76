# A file-backed stand-in for esp32.Partition (MicroPython's esp32 module) with two OTA app
# partitions, so the plug's image update (plug/update_image.py) and its trial
# (plug/slots.py) run on the unix port as they run on an ESP32 built with OTA partitions.
#
#   setup(root="ota", size=SIZE)   the "flash": root/ota_0.bin, root/ota_1.bin (size bytes
#                                  each, erased = 0xFF) and root/otadata.json; ota_0 boots
#   Partition(Partition.RUNNING | Partition.BOOT | label)
#     .info()                       (TYPE_APP, subtype 0x10 + n, address, size, label, False)
#     .readblocks(block, buf[, offset])
#     .writeblocks(block, buf[, offset])
#     .ioctl(cmd, arg)              4: block count, 5: block size (4096), 6: erase block arg
#     .set_boot()                   boot this one next, on trial (state "new")
#     .get_next_update()            the other OTA partition
#     Partition.mark_app_valid_cancel_rollback()   the running image keeps itself
#
# The same rules as the flash: blocks of 4096 bytes; writeblocks(block, buf) erases the
# blocks it covers first (as MicroPython's does), writeblocks(block, buf, offset) writes
# only into erased bytes (0xFF): anything else raises OSError(EIO), where a real flash would
# silently AND the bits; reads and writes past the partition raise OSError(EINVAL).
# set_boot refuses a partition that does not start with an app image's magic byte (0xE9),
# as ESP-IDF's check of the image does (its checksums are not modelled).
#
# The bootloader (ESP-IDF's app rollback) is modelled by boot(), run at the first use in a
# process (a board runs it at every reset): an image set to boot ("new") runs once as
# "pending"; if it has not called mark_app_valid_cancel_rollback() by the next boot, that
# boot marks it "aborted" and runs the previous image. The unix port cannot run an image:
# the stand-in proves the writing, the checks and the switch/rollback decisions.
import json
import os

from micropython import const

_BLOCK = const(4096)
_CHUNK = const(512)
SIZE = 262144  # default partition size of the stand-in (a real OTA slot: 1,536 KB)
ROOT = "ota"
_LABELS = ("ota_0", "ota_1")
_state = {}  # otadata as the bootloader left it in this process: boot, state, previous
_running = []  # [label] once boot() has run in this process


def _path(name):
    return ROOT + "/" + name


def _otadata():
    with open(_path("otadata.json")) as f:
        return json.load(f)


def _save(d):
    with open(_path("otadata.tmp"), "w") as f:
        json.dump(d, f)
    os.rename(_path("otadata.tmp"), _path("otadata.json"))


def setup(root=ROOT, size=SIZE):
    """Make the stand-in's flash under `root`: two erased partitions, ota_0 booting."""
    global ROOT
    ROOT = root
    try:
        os.mkdir(root)
    except OSError:
        pass
    ff = b"\xff" * _CHUNK
    for label in _LABELS:
        with open(_path(label + ".bin"), "wb") as f:
            for _ in range(size // _CHUNK):
                f.write(ff)
    _save({"boot": "ota_0", "state": "valid", "previous": None})
    del _running[:]


def use(root):
    """Use an existing stand-in flash under `root` (made by setup)."""
    global ROOT
    ROOT = root
    del _running[:]


def boot():
    """The bootloader's choice at a reset: returns the label that runs."""
    d = _otadata()
    if d["state"] == "new":
        d["state"] = "pending"
    elif d["state"] == "pending" and d.get("previous"):
        d["state"], d["boot"], d["previous"] = "aborted", d["previous"], d["boot"]
    _save(d)
    del _running[:]
    _running.append(d["boot"])
    return d["boot"]


def running():
    if not _running:
        boot()
    return _running[0]


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=_BLOCK):
        if id == Partition.RUNNING:
            id = running()
        elif id == Partition.BOOT:
            id = _otadata()["boot"]
        if id not in _LABELS:
            raise ValueError("partition not found")
        self.label = id
        self.file = _path(id + ".bin")
        self.size = os.stat(self.file)[6]

    def info(self):
        n = _LABELS.index(self.label)
        return (0, 0x10 + n, 0x10000 + n * self.size, self.size, self.label, False)

    def _span(self, block, n, offset):
        at = block * _BLOCK + offset
        if block < 0 or offset < 0 or at + n > self.size:
            raise OSError(22)  # EINVAL
        return at

    def readblocks(self, block, buf, offset=0):
        at = self._span(block, len(buf), offset)
        with open(self.file, "rb") as f:
            f.seek(at)
            f.readinto(buf)

    def _erase(self, block):
        self._span(block, _BLOCK, 0)
        ff = b"\xff" * _CHUNK
        with open(self.file, "r+b") as f:
            f.seek(block * _BLOCK)
            for _ in range(_BLOCK // _CHUNK):
                f.write(ff)

    def writeblocks(self, block, buf, offset=None):
        n = len(buf)
        if offset is None:  # the simple form erases what it covers
            for b in range(block, block + (n + _BLOCK - 1) // _BLOCK):
                self._erase(b)
            offset = 0
        at = self._span(block, n, offset)
        chk = bytearray(_CHUNK)
        ff = b"\xff" * _CHUNK
        with open(self.file, "r+b") as f:
            f.seek(at)
            i = 0
            while i < n:
                k = f.readinto(memoryview(chk)[:min(_CHUNK, n - i)])
                if chk[:k] != ff[:k]:
                    raise OSError(5, "write to a block not erased: block %d"
                                  % ((at + i) // _BLOCK))
                i += k
            f.seek(at)
            f.write(buf)

    def ioctl(self, cmd, arg):
        if cmd == 4:
            return self.size // _BLOCK
        if cmd == 5:
            return _BLOCK
        if cmd == 6:
            self._erase(arg)
            return 0
        if cmd in (1, 2, 3):
            return 0
        return None

    def set_boot(self):
        b = bytearray(1)
        self.readblocks(0, b)
        if b[0] != 0xE9:
            raise OSError(-5379, "ESP_ERR_OTA_VALIDATE_FAILED: %s holds no app image"
                          % self.label)
        _save({"boot": self.label, "state": "new", "previous": running()})

    def get_next_update(self):
        return Partition(_LABELS[1 - _LABELS.index(self.label)])

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        d = _otadata()
        if d["state"] == "pending" and d["boot"] == running():
            d["state"] = "valid"
            _save(d)
