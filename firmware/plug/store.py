# Durable state files that a power cut cannot tear.
#
# Each save writes `<name>.tmp`, then renames it over the older of two slots
# (`<name>.0`, `<name>.1`); LittleFS renames atomically. A slot holds one header
# line "<generation> <crc32> <length>" and a JSON body. Loading reads both slots and
# takes the newest whose length and checksum match, so a torn or corrupted write
# falls back to the previous good state instead of losing it.
#
# On MicroPython the body is streamed: json.dump runs once into a counter for the
# header's checksum and length, then once into the file, so a save never holds the
# encoded state in the heap.
import binascii
import json
import os
import sys

try:
    from io import IOBase
except ImportError:
    IOBase = object

_MP = sys.implementation.name == "micropython"


class _Sum(IOBase):
    """A stream that keeps only the crc32 and length of what is written to it."""

    def __init__(self):
        self.crc = 0
        self.n = 0

    def write(self, b):
        self.crc = binascii.crc32(b, self.crc)
        self.n += len(b)
        return len(b)


class _Buffered(IOBase):
    """json.dump writes a token at a time: hand the file whole blocks."""

    def __init__(self, f):
        self.f = f
        self.buf = bytearray()

    def write(self, b):
        self.buf.extend(b)
        if len(self.buf) >= 512:
            self.flush()
        return len(b)

    def flush(self):
        if self.buf:
            self.f.write(self.buf)
            self.buf[:] = b""  # keeps the allocation for the next block


class StoreError(Exception):
    pass


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _read_slot(path):
    """(generation, obj) of a good slot, or None if it is missing, torn or corrupt."""
    try:
        with open(path, "rb") as f:
            head = f.readline(64)
            try:
                gen, crc, length = [int(x) for x in head.split()]
            except ValueError:
                return None
            if not head.endswith(b"\n") or length < 0:
                return None
            body = f.read(length + 1)
    except OSError:
        return None
    if len(body) != length or binascii.crc32(body) & 0xFFFFFFFF != crc:
        return None
    try:
        return gen, json.loads(body)
    except ValueError:
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
        best = None
        for slot in (0, 1):
            got = _read_slot(self._path(name, slot))
            if got is not None and (best is None or got[0] > best[0]):
                best = got
        if best is None:
            self._gen[name] = 0
            return default
        self._gen[name] = best[0]
        return best[1]

    def save(self, name, obj):
        """Write obj durably as the next generation of `name`; returns that generation."""
        if name not in self._gen:
            self.load(name)
        gen = self._gen[name] + 1
        tmp = self._path(name, "tmp")
        if _MP:
            s = _Sum()
            json.dump(obj, s)
            crc, n, body = s.crc, s.n, None
        else:
            body = json.dumps(obj).encode()
            crc, n = binascii.crc32(body), len(body)
        with open(tmp, "wb") as f:
            f.write(b"%d %d %d\n" % (gen, crc & 0xFFFFFFFF, n))
            if body is None:
                out = _Buffered(f)
                json.dump(obj, out)
                out.flush()
            else:
                f.write(body)
        os.rename(tmp, self._path(name, gen & 1))
        self._gen[name] = gen
        return gen

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
