# Durable state files that a power cut cannot tear.
#
# Each save writes `<name>.tmp`, then renames it over the older of two slots
# (`<name>.0`, `<name>.1`); LittleFS renames atomically. A slot holds one header
# line "<generation> <crc32> <length>" and a JSON body. Loading reads both slots and
# takes the newest whose length and checksum match, so a torn or corrupted write
# falls back to the previous good state instead of losing it.
#
# The body is streamed: json.dump runs once into a counter for the header's checksum and
# length, then once into the file through one fixed 512-byte buffer, so a save never
# holds the encoded state in the heap; a load checks a slot's length and checksum in a
# streamed pass, then parses it with json.load from the file (no slot is read whole).
#
# Every name has a stated maximum size (BOUNDS, bytes per slot file; DEFAULT_BOUND for
# names not listed). A save that would exceed it raises StoreError before anything is
# written, so the previous good copy stays in force; the modules keep their state well
# under these bounds (payments, billing and settle refuse new work first), so this is
# the backstop that keeps a bug or a hostile peer from filling the flash or the heap.
# The payment history (history.py) lives beside these files under history/, bounded
# per segment file (HISTORY_SEGMENT) and in number of segments.
#
# Formats: a release that changes a file's format registers it, migrate(name, format,
# fn, down=None): fn(obj, old_format) -> obj. Such a file's header carries its format as
# a 4th field ("<generation> <crc32> <length> <format>"; none: format 1). Loading a copy
# of an older format first keeps it as `<name>.pre-<version>` (the raw slot file;
# version: the release migrating), then migrates and saves it. A release on trial is
# kept or rolled back (plug/slots.py, main.py): kept, drop_pre(root, version) removes its
# copies; rolled back, restore_pre (main.py's own, as the release it returns to may
# predate this) puts each copy back as the newest, so the old release reads its format.
# With down(obj, old_format) -> obj in the old format, every save during the trial also
# rewrites the kept copy (same generation), so the old release reads what the trial
# wrote (energy metered on trial is kept, up to the last save); without it, what was
# written since the migration is lost at a rollback.
import binascii
import json
import os

from micropython import const
from plug import iobuf

try:
    from io import IOBase
except ImportError:
    IOBase = object


_BLOCK = const(512)  # the buffer a save writes and a load checks through (plug/iobuf.py)


class _Sum(IOBase):
    """A stream that keeps only the crc32 and length of what is written to it."""

    def __init__(self):
        self.crc = 0
        self.n = 0

    def write(self, b):
        if isinstance(b, str):  # CPython's json.dump writes str
            b = b.encode()
        self.crc = binascii.crc32(b, self.crc)
        self.n += len(b)
        return len(b)


class _Buffered(IOBase):
    """json.dump writes a token at a time: hand the file whole blocks, through one
    fixed buffer that is never reallocated."""

    def __init__(self, f, buf):
        self.f = f
        self.buf = buf
        self.mv = memoryview(buf)
        self.n = 0

    def write(self, b):
        if isinstance(b, str):  # CPython's json.dump writes str
            b = b.encode()
        size = len(b)
        n = self.n
        if n + size <= _BLOCK:  # a token that fits: copied without allocating anything
            self.buf[n:n + size] = b
            self.n = n + size
            return size
        src = memoryview(b)
        i = 0
        while i < size:
            if self.n == _BLOCK:
                self.flush()
            k = min(_BLOCK - self.n, size - i)
            self.mv[self.n:self.n + k] = src[i:i + k]
            self.n += k
            i += k
        return size

    def flush(self):
        if self.n:
            self.f.write(self.mv[:self.n])
            self.n = 0


def _dump(obj, out):
    # an object with dump(out) writes its own JSON (the energy ledger's checkpoint; a
    # name saved so registers no down converter: down needs the object tree)
    d = getattr(obj, "dump", None)
    if d is None:
        json.dump(obj, out)
    else:
        d(out)


class StoreError(Exception):
    pass


FORMATS = {}  # name -> (format, fn, down): see the top


def migrate(name, fmt, fn, down=None):
    FORMATS[name] = (fmt, fn, down)


def _pre(root, version):
    # names of the copies release `version` kept
    end = ".pre-%s" % version
    try:
        return [e[0] for e in os.ilistdir(root) if e[0].endswith(end)], end
    except OSError:  # no state yet
        return (), end


def restore_pre(root, version):
    """Put back the copies release `version` kept (rolled back), each as its file's newest
    slot (main.py does the same for a folder slot's rollback)."""
    names, end = _pre(root, version)
    for n in names:
        name = root + "/" + n[:-len(end)]
        with open(root + "/" + n, "rb") as f:
            gen = int(f.readline(64).split()[0])
        for suffix in ("tmp", str(1 - (gen & 1))):
            try:
                os.remove("%s.%s" % (name, suffix))
            except OSError:
                pass
        os.rename(root + "/" + n, "%s.%d" % (name, gen & 1))


def drop_pre(root, version):
    """Remove the pre-migration copies release `version` kept (it has been kept)."""
    for n in _pre(root, version)[0]:
        os.remove(root + "/" + n)


BOUNDS = {
    "payments": 32768,  # live payment records (payments.py: _MAX_OPEN, _KEEP_DONE, ...)
    "billing": 32768,  # billed lines (12 per channel) and open invoices (8)
    "tariff": 24576,  # providers and up to rates.MAX_INTERVALS rate intervals
    "ledger": 32768,  # energy checkpoint: 24 buckets per channel
    "calibration": 8192,
    "config": 12288,  # an envelope is at most config.MAX_ENVELOPE_BYTES (8 KB)
    "config_next": 12288,
    "history": 4096,  # the history's carried totals (and up to 32 recent record keys)
    "periods": 8192,  # energy by period: 8 ints per channel, ~130 bytes each (periods.py)
}
DEFAULT_BOUND = 4096  # owner, boots, wallet, wifi_good, outputs ...
HISTORY_SEGMENT = 16384  # one history segment file (history.py _SEG_BYTES)


def bound(name):
    """Most bytes a slot file of `name` may hold (header included)."""
    return BOUNDS.get(name, DEFAULT_BOUND)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _check_slot(path):
    """(generation, header length, format) of a slot whose length and crc32 match, else None
    (missing, torn or corrupt): one streamed pass, _BLOCK bytes at a time."""
    try:
        with open(path, "rb") as f:
            head = f.readline(64)
            try:
                f4 = [int(x) for x in head.split()]
            except ValueError:
                return None
            if not 3 <= len(f4) <= 4:
                return None
            gen, crc, length = f4[0], f4[1], f4[2]
            fmt = f4[3] if len(f4) == 4 else 1
            if not head.endswith(b"\n") or length < 0:
                return None
            buf = iobuf.STORE.take()
            try:
                c = n = 0
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    n += k
                    if n > length:
                        return None
                    c = binascii.crc32(buf if k == _BLOCK else memoryview(buf)[:k], c)
            finally:
                iobuf.STORE.give(buf)
    except OSError:
        return None
    return (gen, len(head), fmt) if n == length and c & 0xFFFFFFFF == crc else None


def _parse_slot(path, skip):
    """The JSON body of a checked slot, parsed from the file (never read whole into the
    heap), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(skip)
            return [json.load(f)]
    except (OSError, ValueError):
        return None


class Store:
    def __init__(self, root):
        self.root = root.rstrip("/")
        self._gen = {}
        if not _exists(self.root):
            os.mkdir(self.root)

    def _path(self, name, suffix):
        return "%s/%s.%s" % (self.root, name, suffix)

    def load(self, name, default=None):
        """The newest good copy of `name`, or `default` if none survives."""
        good = []
        for slot in (0, 1):
            got = _check_slot(self._path(name, slot))
            if got is not None:
                good.append((got[0], got[1], slot, got[2]))
        good.sort(reverse=True)  # the newest first; parsed only if it checks out
        for gen, skip, slot, fmt in good:
            obj = _parse_slot(self._path(name, slot), skip)
            if obj is not None:
                self._gen[name] = gen
                if name in FORMATS and fmt < FORMATS[name][0]:
                    return self._migrate(name, self._path(name, slot), obj[0], fmt)
                return obj[0]
        self._gen[name] = 0
        return default

    def _migrate(self, name, path, obj, fmt):
        # keep the old copy (a power cut before the save below: done again next boot)
        from plug.version import VERSION

        pre = "%s/%s.pre-%s" % (self.root, name, VERSION)
        buf = iobuf.STORE.take()
        try:
            with open(path, "rb") as src, open(pre + ".tmp", "wb") as dst:
                while True:
                    k = src.readinto(buf)
                    if not k:
                        break
                    dst.write(memoryview(buf)[:k])
        finally:
            iobuf.STORE.give(buf)
        os.rename(pre + ".tmp", pre)
        obj = FORMATS[name][1](obj, fmt)
        self.save(name, obj)
        print("[store] %s: format %d -> %d (the old copy kept as %s until %s is kept)"
              % (name, fmt, FORMATS[name][0], pre, VERSION))
        return obj

    def save(self, name, obj):
        """Write obj durably as the next generation of `name`; returns that generation."""
        if name not in self._gen:
            self.load(name)
        gen = self._gen[name] + 1
        form = FORMATS.get(name)
        self._write(name, self._path(name, gen & 1), gen, obj, form[0] if form else 1)
        self._gen[name] = gen
        if form and form[2]:
            self._save_pre(name, gen, obj, form[2])
        return gen

    def _write(self, name, path, gen, obj, fmt):
        s = _Sum()
        _dump(obj, s)
        crc, n = s.crc, s.n
        head = (b"%d %d %d %d\n" % (gen, crc & 0xFFFFFFFF, n, fmt) if fmt > 1 else
                b"%d %d %d\n" % (gen, crc & 0xFFFFFFFF, n))
        if len(head) + n > bound(name):
            raise StoreError("%s: %d bytes, more than the %d this file may hold; the "
                             "previous copy stays" % (name, len(head) + n, bound(name)))
        tmp = self._path(name, "tmp")
        buf = iobuf.STORE.take()
        try:
            with open(tmp, "wb") as f:
                f.write(head)
                out = _Buffered(f, buf)
                _dump(obj, out)
                out.flush()
        finally:
            out = None
            iobuf.STORE.give(buf)
        os.rename(tmp, path)

    def _save_pre(self, name, gen, obj, down):
        # on trial after a migration: the kept copy follows, in the format before
        from plug.version import VERSION

        pre = "%s/%s.pre-%s" % (self.root, name, VERSION)
        try:
            with open(pre, "rb") as f:
                head = f.readline(64).split()
        except OSError:
            return  # no copy kept: not on trial, or kept
        old = int(head[3]) if len(head) > 3 else 1
        self._write(name, pre, gen, down(obj, old), old)

    def generation(self, name):
        if name not in self._gen:
            self.load(name)
        return self._gen[name]

    def remove(self, name):
        for suffix in ("0", "1", "tmp"):
            try:
                os.remove(self._path(name, suffix))
            except OSError:
                pass
        self._gen.pop(name, None)
