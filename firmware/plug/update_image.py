# Image releases for a plug whose code is frozen into its firmware: the signed bundle
# (tools/release.py, `plugctl release --image`) carries a firmware image, written into the
# next OTA app partition through MicroPython's esp32.Partition (on the virtual board, the
# file-backed stand-in boards/sim/partition.py).
#
#   partition_api()              esp32.Partition where the app is frozen, else None (the
#                                plug runs its code from files and takes .mpy bundles)
#   check(m, version, P)         UpdateError unless the bundle's kind suits the plug (an
#                                image where P, files where not) and its "image" is sound
#   await write(src, m, P)       the image's m["image"][0] bytes from src (update._In) into
#                                P(P.RUNNING).get_next_update(), block by block: each 4096-
#                                byte block erased (ioctl 6) and then written 512 bytes at a
#                                time (writeblocks with an offset, which does not erase
#                                again), hashed as it streams and read back and hashed again
#                                once written; returns the partition, or UpdateError if
#                                the image does not fit, a hash differs or the flash fails
#   install(plug, m)             the image written (m["_part"], set by update.receive):
#                                slot.json records it on trial, THEN part.set_boot() (the
#                                switch), then the plug reboots
#
# Nothing here calls set_boot before both hashes matched, so a refused or cut-off image
# leaves the boot partition as it was; what it wrote stays in a partition nothing boots.
# The trial is plug/slots.py's, with ESP-IDF's app rollback underneath: the new image boots
# once "pending"; the app calls Partition.mark_app_valid_cancel_rollback() when slots.py
# keeps it, and any reset before that makes the bootloader go back to the previous image.
# Heap: one 512-byte buffer and a hash object; imported only for an image bundle.
import binascii
import hashlib

from micropython import const

from plug.update import UpdateError, _log

_BUF = const(512)
_IOCTL_BLOCKS = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_ERASE = const(6)
_MAX_IMAGE = const(1572864)  # the bundle's bound on its files (update.py _MAX_TOTAL)
API = None  # tests set the stand-in here (boards/sim/partition.Partition)


def partition_api():
    if API is not None:
        return API
    if globals().get("__file__", "").endswith(".mpy"):
        return None  # the app runs from .mpy files on the flash, not frozen
    try:
        from esp32 import Partition
    except ImportError:
        return None
    return Partition


def check(m, v, P):
    """UpdateError unless the manifest `m` of release `v` suits a plug with the partition
    API `P` (None: the app runs from files): an image where the app is frozen, files where
    it is not."""
    if "image" not in m:
        raise UpdateError("release %s is .mpy files; this plug's code is frozen into its "
                          "firmware: send a release made with --image" % v)
    if P is None:
        raise UpdateError("release %s is a firmware image; this plug runs its code from "
                          "files: send a release of .mpy files (plugctl release without "
                          "--image)" % v)
    im, total = m["image"], m.get("total")
    if (not isinstance(im, list) or len(im) != 2 or type(im[0]) is not int
            or not 0 < im[0] <= _MAX_IMAGE or not isinstance(im[1], str) or len(im[1]) != 64
            or total != im[0]):
        raise UpdateError("manifest: image must be [size up to %d, sha256 hex], total its "
                          "size" % _MAX_IMAGE)


async def write(src, m, P):
    size, want = m["image"][0], m["image"][1]
    try:
        part = P(P.RUNNING).get_next_update()
        bs = part.ioctl(_IOCTL_BLOCK_SIZE, 0)
        room = part.ioctl(_IOCTL_BLOCKS, 0) * bs
    except (OSError, ValueError) as e:
        raise UpdateError("no OTA partition to write the image to (%r): the firmware needs "
                          "OTA partitions (BOARD_VARIANT=OTA)" % (e,))
    label = part.info()[4]
    if size > room:
        raise UpdateError("image of %d bytes; partition %s holds %d" % (size, label, room))
    buf = bytearray(_BUF)
    mv = memoryview(buf)
    h = hashlib.sha256()
    block = done = 0
    try:
        while done < size:
            part.ioctl(_IOCTL_ERASE, block)
            off = 0
            while off < bs and done < size:
                k = min(_BUF, bs - off, size - done)
                await src.exact(mv[:k])
                h.update(mv[:k])
                part.writeblocks(block, mv[:k], off)
                off += k
                done += k
            block += 1
        if binascii.hexlify(h.digest()).decode() != want:
            raise UpdateError("image: SHA-256 differs from the manifest's")
        h = hashlib.sha256()  # what the flash holds now
        block = done = 0
        while done < size:
            off = 0
            while off < bs and done < size:
                k = min(_BUF, bs - off, size - done)
                part.readblocks(block, mv[:k], off)
                h.update(mv[:k])
                off += k
                done += k
            block += 1
    except OSError as e:
        raise UpdateError("flash: %r while writing the image to %s" % (e, label))
    if binascii.hexlify(h.digest()).decode() != want:
        raise UpdateError("image: what %s holds differs from what arrived (flash fault)"
                          % label)
    _log("[update] image %s (build %s) written to %s: %d bytes" % (
        m["version"], m.get("build"), label, size))
    return part


def install(plug, m):
    """Record the image written (m["_part"]) on trial in slot.json, switch the boot
    partition to it, reboot; returns the partition's label."""
    from plug import slots
    from plug.version import VERSION

    part = m.pop("_part")
    label = part.info()[4]
    P = partition_api()
    running = P(P.RUNNING).info()[4]
    slots.save({"active": "", "previous": "", "image": label, "previous_image": running,
                "version": m["version"], "previous_version": VERSION, "good": False,
                "trial": 0, "trial_s": m.get("trial_s") or slots.TRIAL_S})
    try:
        part.set_boot()
    except OSError as e:  # the record says "on trial" in a partition that does not boot:
        slots.save({"active": "", "image": running, "version": VERSION, "good": True,
                    "trial": 0})  # back to the running image, nothing switched
        raise UpdateError("set_boot of %s: %r" % (label, e))
    slots.note(plug, "installed", m["version"], "")
    slots._log("[update] image %s written to %s; rebooting into it (on trial)"
               % (m["version"], label))
    __import__("asyncio").create_task(slots._reboot_soon(plug))  # after the answer
    return label
