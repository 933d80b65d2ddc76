# Signed software updates, checked and staged as they stream in. tools/release.py
# describes the bundle: b"PLUGUPD1", the manifest's length (2 bytes), the manifest (canonical
# JSON), the owner's 65-byte EIP-191 signature over it, the file table ("<size> <sha256>
# <path>\n" per file, bound to the manifest by its SHA-256), then the files' bytes.
#
#   await receive(plug, reader, length)   -> the manifest (dict) of the staged release;
#                                            UpdateError(reason) if refused
#   await post(plug, req)                  POST /update (web.py; the server streams its
#                                            body: req.stream)
#   install(plug, manifest)                the staged release installed, plug rebooting
#
# `reader` has `await reader.readinto(memoryview)` (an asyncio stream); `length` is the
# bundle's size if known (Content-Length), checked against the manifest before anything is
# written. A bundle is taken only if the plug's owner signed it, it names this plug's wallet
# address and this board, its version is above the running one, no release is on trial,
# and the plug's config is at least its min_config. Then the table and every file
# are streamed into STAGE on the flash through one 512-byte buffer, each hashed as it is
# written; a mismatch, a truncated stream, a path other than board.mpy or one under plug/,
# lib/ or www/, or more bytes than the manifest says removes STAGE completely (so does the
# connection being cut off). A complete stage ends with STAGE/.manifest (the manifest's
# bytes), written last.
#
# An image bundle (its manifest has "image": [size, sha256] instead of "table" and
# "files") is for a plug whose code is frozen: its image goes into the next OTA partition
# (plug/update_image.py), not into STAGE; a plug running from files refuses one, and a
# frozen plug refuses a bundle of files.
#
# A bundle staged is recorded as the store's "update" record {state, version, reason, at},
# which /status shows. A refusal is logged as one [update] line and kept in RAM only
# (plug.update_refused, /status update.refused): anyone can POST /update, so refusals
# must not wear the flash nor overwrite the record of the last install or rollback.
# Imported only when a bundle arrives; its heap while staging is the manifest buffer
# (at most 1.5 KB, freed before the files), a 512-byte buffer and two hash objects.
import asyncio
import binascii
import hashlib
import json
import os
import sys

from micropython import const

MAGIC = b"PLUGUPD1"
STAGE = "stage"
_MAX_MANIFEST = const(1536)
_MAX_TABLE = const(16384)  # about 90 bytes a file
_MAX_FILES = const(180)
_MAX_TOTAL = const(1572864)  # the files' bytes: an ESP32 app partition's worth
_BUF = const(512)
_SIG = const(65)
_MAX_PATH = const(64)
_SPARE = const(16384)  # flash kept free beyond the staged bundle
MAX_BUNDLE = 10 + _MAX_MANIFEST + _SIG + _MAX_TABLE + _MAX_TOTAL


class UpdateError(ValueError):
    pass


def _log(msg):
    # through the REPL's log where it is loaded (it prints around a serial session)
    repl = sys.modules.get("plug.repl")
    (repl.log if repl else print)(msg)


def parse_version(v):
    """(major, minor, patch) of "X.Y.Z"; UpdateError otherwise."""
    parts = v.split(".") if isinstance(v, str) else ()
    if len(parts) != 3:
        raise UpdateError("manifest: version %r is not X.Y.Z" % (v,))
    out = []
    for p in parts:
        if not p.isdigit() or len(p) > 5 or (len(p) > 1 and p[0] == "0"):
            raise UpdateError("manifest: version %r is not X.Y.Z" % (v,))
        out.append(int(p))
    return tuple(out)


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def rmtree(path):
    """Remove `path` and everything under it; nothing if it is not there."""
    if not _is_dir(path):
        try:
            os.remove(path)
        except OSError:
            pass
        return
    for e in list(os.ilistdir(path)):
        p = path + "/" + e[0]
        if e[1] & 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def _check_space(m):
    try:
        st = os.statvfs(".")
        free = st[0] * st[4]
    except (OSError, AttributeError):
        return
    need = m["total"] + m["table"][0] + _SPARE
    if free < need:
        raise UpdateError("release %s needs %d bytes of flash; %d are free"
                          % (m["version"], need, free))


def _check_path(p):
    ok = 0 < len(p) <= _MAX_PATH and (p == "board.mpy" or p.startswith("plug/")
                                       or p.startswith("lib/") or p.startswith("www/"))
    if ok:
        parts = p.split("/")
        ok = len(parts) <= 4
        for part in parts:
            if not part or part[0] == ".":
                ok = False
            for c in part:
                if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_-."):
                    ok = False
    if not ok:
        raise UpdateError("file table: path %r is not board.mpy or under plug/, lib/, "
                          "www/" % p)


class _In:
    """The bundle's bytes through one buffer, never more than `length` of them."""

    def __init__(self, reader, length):
        self.r = reader
        self.left = length  # None: until the stream ends
        self.got = 0

    async def exact(self, mv):
        n = len(mv)
        if self.left is not None and n > self.left:
            raise UpdateError("truncated: the bundle ends %d bytes early" % (n - self.left))
        i = 0
        while i < n:
            k = await self.r.readinto(mv[i:])
            if not k:
                raise UpdateError("truncated: the stream ended after %d bytes"
                                  % (self.got + i))
            i += k
        self.got += n
        if self.left is not None:
            self.left -= n


class Staging:
    """Checks and stages one bundle for a plug with this owner, wallet address, board,
    running version and config version."""

    def __init__(self, owner, address, board, version, config_version):
        self.owner = owner
        self.address = address
        self.board = board
        self.version = version
        self.config_version = config_version
        self.on_trial = None  # the version installed and not yet kept (plug/slots.py)
        self.rolled_back = None  # the last release rolled back: never installed again
        self.manifest = None
        self.parts = self.part = None  # partition API (frozen app), partition written

    async def run(self, reader, length=None):
        """The manifest once the bundle is staged; UpdateError with the reason if not, and
        then no stage is left if this bundle had begun one."""
        if length is not None and length > MAX_BUNDLE:
            raise UpdateError("bundle of %d bytes; at most %d" % (length, MAX_BUNDLE))
        src = _In(reader, length)
        m, mlen = await self._head(src)
        want = 10 + mlen + _SIG + ("image" not in m and m["table"][0]) + m["total"]
        if length is not None and length != want:
            raise UpdateError("bundle of %d bytes; its manifest says %d" % (length, want))
        self.manifest = m
        if "image" in m:  # never in STAGE: straight into the next OTA partition
            self.part = await __import__("plug.update_image").update_image.write(src, m,
                                                                                 self.parts)
            return m
        done = False
        try:
            rmtree(STAGE)  # what a power cut left of an earlier bundle, if anything
            _check_space(m)
            os.mkdir(STAGE)
            await self._files(src, m)
            with open(STAGE + "/.manifest", "wb") as f:
                f.write(self._mbytes)
            done = True
        except OSError as e:
            raise UpdateError("flash: %r while staging" % e)
        finally:  # whatever stopped it (a refusal, the connection cut off): no stage stays
            if not done:
                try:
                    rmtree(STAGE)
                except OSError:
                    pass
        return m

    async def _head(self, src):
        buf = bytearray(12)
        mv = memoryview(buf)
        await src.exact(mv[:10])
        if buf[:8] != MAGIC:
            raise UpdateError("not a release bundle (no PLUGUPD1 header)")
        mlen = (buf[8] << 8) | buf[9]
        if not 2 <= mlen <= _MAX_MANIFEST:
            raise UpdateError("manifest of %d bytes; at most %d" % (mlen, _MAX_MANIFEST))
        mb = bytearray(mlen + _SIG)
        await src.exact(memoryview(mb))
        man, sig = bytes(mb[:mlen]), bytes(mb[mlen:])
        mb = None
        if not self.owner:
            raise UpdateError("no owner recorded on this plug: it takes no release")
        from eth_message import recover_message

        try:
            signer = recover_message(man, sig)
        except ValueError as e:
            raise UpdateError("signature: %s" % e)
        if signer.lower() != self.owner.lower():
            raise UpdateError("signed by %s, not by the plug's owner" % signer)
        try:
            m = json.loads(man)
        except ValueError:
            raise UpdateError("manifest: not JSON")
        self._check(m)
        self._mbytes = man
        return m, mlen

    def _check(self, m):
        def field(k, t):
            v = m.get(k) if isinstance(m, dict) else None
            if not isinstance(v, t) or isinstance(v, bool):
                raise UpdateError("manifest: %s missing or not a %s" % (k, t.__name__))
            return v

        if field("format", int) != 1:
            raise UpdateError("manifest: format %r; this plug reads format 1" % m["format"])
        v = field("version", str)
        if field("board", str) != self.board:
            raise UpdateError("release %s is for board %s; this plug is %s"
                              % (v, m["board"], self.board))
        plugs = field("plugs", list)
        me = (self.address or "").lower()
        if not me or not [p for p in plugs if isinstance(p, str) and p.lower() == me]:
            raise UpdateError("release %s is bound to other plugs, not %s"
                              % (v, self.address))
        if self.on_trial:
            raise UpdateError("release %s is on trial; send %s once it is kept or rolled "
                              "back" % (self.on_trial, v))
        new = parse_version(v)
        if new <= parse_version(self.version):
            raise UpdateError("release %s is not newer than the running %s" % (v, self.version))
        if self.rolled_back and new <= parse_version(self.rolled_back):
            raise UpdateError("release %s is not newer than %s, which was rolled back: sign a "
                              "newer version" % (v, self.rolled_back))
        need = field("min_config", int)
        if self.config_version < need:
            raise UpdateError("release %s needs config version %d or later; this plug has %d"
                              % (v, need, self.config_version))
        ts = m.get("trial_s", 300)
        if type(ts) is not int or not 5 <= ts <= 86400:
            raise UpdateError("manifest: trial_s must be 5 to 86400 seconds")
        if "image" in m or self.parts is not None:  # plug/update_image.py
            return __import__("plug.update_image").update_image.check(m, v, self.parts)
        t = field("table", list)
        n, total = field("files", int), field("total", int)
        if (len(t) != 2 or type(t[0]) is not int or not 0 < t[0] <= _MAX_TABLE
                or not isinstance(t[1], str) or len(t[1]) != 64):
            raise UpdateError("manifest: table must be [size up to %d, sha256 hex]"
                              % _MAX_TABLE)
        if not 0 < n <= _MAX_FILES or not 0 < total <= _MAX_TOTAL:
            raise UpdateError("release %s: %d files, %d bytes; at most %d files, %d bytes"
                              % (v, n, total, _MAX_FILES, _MAX_TOTAL))

    async def _copy(self, src, path, size, buf):
        # size bytes from src into path; the hex SHA-256 of them
        h = hashlib.sha256()
        mv = memoryview(buf)
        with open(path, "wb") as f:
            while size:
                k = min(size, _BUF)
                await src.exact(mv[:k])
                f.write(mv[:k])
                h.update(mv[:k])
                size -= k
        return binascii.hexlify(h.digest()).decode()

    async def _files(self, src, m):
        buf = bytearray(_BUF)
        table = STAGE + "/.table"
        if await self._copy(src, table, m["table"][0], buf) != m["table"][1]:
            raise UpdateError("file table: SHA-256 differs from the manifest's")
        count = total = 0
        made = ""
        with open(table) as t:
            while True:
                line = t.readline()
                if not line:
                    break
                parts = line.rstrip("\n").split(" ")
                if (len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 8
                        or len(parts[1]) != 64):
                    raise UpdateError("file table: line %d is not '<size> <sha256> <path>'"
                                      % (count + 1))
                size, want, path = int(parts[0]), parts[1], parts[2]
                _check_path(path)
                count += 1
                total += size
                if count > m["files"] or total > m["total"]:
                    raise UpdateError("file table: more files or bytes than the manifest "
                                      "says")
                d = path.rsplit("/", 1)[0] if "/" in path else ""
                if d and d != made:
                    acc = STAGE
                    for part in d.split("/"):
                        acc += "/" + part
                        if not _is_dir(acc):
                            os.mkdir(acc)
                    made = d
                if await self._copy(src, STAGE + "/" + path, size, buf) != want:
                    raise UpdateError("%s: SHA-256 differs from the file table's" % path)
        if count != m["files"] or total != m["total"]:
            raise UpdateError("file table: %d files, %d bytes; the manifest says %d, %d"
                              % (count, total, m["files"], m["total"]))


async def receive(plug, reader, length=None, pulled=False):
    """Check and stage a bundle for `plug` (the app); records and logs the outcome.
    pulled (plug/update_pull.py): what the server keeps serving (not newer than the
    running release or than one rolled back, or sent while one is on trial) is refused
    without a record or a log line."""
    from plug.version import VERSION

    try:  # the wallet's account 0, also in safe mode (a release may be what fixes it)
        address = plug._plug_address()
    except Exception:  # noqa: BLE001 - no wallet yet: no plug address to be bound to
        address = None
    s = Staging(plug.cfgm.owner, address, plug.board.NAME, VERSION, plug.cfgm.version)
    s.parts = __import__("plug.update_image").update_image.partition_api()
    try:
        with open("slot.json") as f:
            rec = json.loads(f.read())
        if not rec.get("good"):
            s.on_trial = rec.get("version") or "?"
        elif rec.get("rolled_back"):  # never the one that failed its trial again
            s.rolled_back = rec["rolled_back"]
    except (OSError, ValueError, AttributeError):
        pass
    try:
        m = await s.run(reader, length)
    except (UpdateError, asyncio.CancelledError) as e:
        why = str(e) if isinstance(e, UpdateError) else "the stream stopped (cut off)"
        if pulled and ("is not newer than" in why or "is on trial;" in why):
            raise
        version = s.manifest["version"] if s.manifest else None
        plug.update_refused = {"version": version, "reason": why[:200],
                               "at": plug.clock.time()}
        _log("[update] refused%s: %s" % (" " + version if version else "", why))
        raise
    _record(plug, "staged", m["version"], "")
    if s.part:
        m["_part"] = s.part  # the partition written (update_image logged it)
    else:
        _log("[update] release %s (build %s) staged: %d files, %d bytes"
             % (m["version"], m.get("build"), m["files"], m["total"]))
    return m


def install(plug, m):
    """The release received (`m`, from receive) installed: an image by plug/update_image.py,
    files by plug/slots.py; the plug reboots into it. The slot or partition's label."""
    return (__import__("plug.update_image").update_image if "_part" in m else
            __import__("plug.slots").slots).install(plug, m)


async def post(plug, req):
    """POST /update: the bundle staged, installed in the other slot (plug/slots.py) and
    the plug rebooting into it: 200 {"installed": version, "build", "files", "bytes",
    "slot", "rebooting": true}; or 400 with the reason (after reading the rest of the
    bundle, so the sender sees the answer)."""
    from plug.http_request import HTTPError

    try:
        m = await receive(plug, req.stream, req.stream.left)
        slot = install(plug, m)
    except UpdateError as e:
        if req.stream.left <= MAX_BUNDLE:
            await drain(req.stream)
        raise HTTPError(400, str(e))
    finally:  # let go of the updater and the signature check (loaded for this bundle)
        __import__("plug.supervise").supervise.unload("plug.update", "plug.update_image",
                                                      "eth_message")
    return {"installed": m["version"], "build": m.get("build"), "files": m.get("files", 1),
            "bytes": m["total"], "slot": slot, "rebooting": True}


async def drain(reader, limit=MAX_BUNDLE):
    """Read and drop what is left of a refused bundle (at most `limit` bytes), so its
    sender gets the answer instead of a reset connection."""
    buf = bytearray(256)
    mv = memoryview(buf)
    while limit > 0 and await reader.readinto(mv):
        limit -= 256


def _record(plug, state, version, reason):
    rec = {"state": state, "version": version, "reason": reason[:200],
           "at": plug.clock.time()}
    try:
        plug.store.save("update", rec)
    except Exception as e:  # noqa: BLE001 - the outcome stands; only its record is lost
        _log("[update] record not saved: %r" % e)
