# Payment history on the flash: append-only, CRC-checked, size-bounded, read streamed.
#
#   h = History(store)               <store root>/history/<k>, carried totals in the store
#   h.add(rec) -> True (appended) or False (already there: a move a power cut interrupted)
#   h.count()                        records held (rotated-out ones are only carried)
#   h.read(offset=0, limit=None)     generator of records, oldest first, streamed
#   h.find(invoice_id)               the newest record of that invoice, or None (a scan)
#   h.carried()                      {"n", "confirmed", "paid": {asset: sum}} rotated out
#   h.paid(asset)                    confirmed amount of every record ever appended (carried
#                                    + held), from the index: no segment is read
#   compact(rec)                     what the history keeps of a payments.py record
#   archive(payments, ...)           move payments.py's oldest finished records here
#
# A record is one line: "<crc32 of the JSON, 8 hex> <JSON>\n", at most _MAX_REC bytes.
# Records go into numbered segment files of at most seg_bytes each; a record that does
# not fit starts the next segment, and when `segs` segments exist the oldest is dropped:
# first its records are added to the carried totals (count, confirmed count and the
# confirmed amounts per asset, in the store's crash-safe two-slot file "history", with
# the number of the last segment carried), then the file is removed; a segment whose
# number is carried is removed at the next start. So the totals of everything the plug
# ever archived stay reconcilable with the chain: carried + what is held.
#
# A line whose CRC or JSON is wrong (a torn tail after a power cut, a flipped bit) is
# skipped by every reader and never counted; the next append after a torn tail ends the
# fragment with "#" (so a record torn only of its newline is not revived later either) and
# starts a new line, so it never glues onto the fragment. Readers hold one small batch of
# lines at a time and reopen the file between batches, so appends and rotation between
# two batches are harmless (a page read across a rotation may start later).
#
# The index (in the same "history" state file, saved after each append): per segment held
# [number, records, bytes], the confirmed amount per asset of every record ever appended,
# and the recent keys (below). Starting from it reads no segment: only the newest one may
# have grown since (a power cut after an append, before the index was saved), which its
# size shows (os.stat) and only its new tail is read; a segment the index does not know
# yet (started just before such a cut) is read whole. Anything else that does not match
# (a file missing, shorter, or an index from before this firmware) rebuilds the index from
# every segment once, logged. A record spoiled after it was indexed (a flipped bit) is
# skipped by readers but stays in the index's counts and sums: it was appended and paid.
#
# A record's key is "<id>/<att>" (an invoice paid again after a failed attempt is a new
# record). The keys of the last _RECENT records appended are kept in RAM and in the index,
# so a record moved again after a power cut is appended only once, even when its segment
# rotated out before its live copy was dropped.
import binascii
import json
import os

from plug.store import HISTORY_SEGMENT

_DIR = "history"
_CARRY = "history"  # store name of the carried totals
_SEGS = 32  # segment files at most
_SEG_BYTES = HISTORY_SEGMENT  # bytes per segment at most
_MAX_REC = 1536  # bytes per record line at most
_RECENT = 32
_BATCH = 8  # lines read per file open


class HistoryError(Exception):
    pass


def _line(rec):
    body = json.dumps(rec).encode()
    return b"%08x " % (binascii.crc32(body) & 0xFFFFFFFF) + body + b"\n"


def _parse(line):
    """The record of one line, or None if torn or corrupt."""
    if len(line) < 11 or line[8:9] != b" " or line[-1:] != b"\n":
        return None
    body = line[9:-1]
    try:
        if int(line[:8], 16) != binascii.crc32(body) & 0xFFFFFFFF:
            return None
        rec = json.loads(body)
    except ValueError:  # bad hex, bad JSON, bad UTF-8 (UnicodeError is a ValueError)
        return None
    return rec if isinstance(rec, dict) else None


def _valid(line):
    """A CRC check only (no JSON parse): what counting needs."""
    if len(line) < 11 or line[8:9] != b" " or line[-1:] != b"\n":
        return False
    try:
        return int(line[:8], 16) == binascii.crc32(line[9:-1]) & 0xFFFFFFFF
    except ValueError:
        return False


def _lines(f):
    """Lines of an open file, read 128 bytes at a time; a piece longer than _MAX_REC
    with no newline comes out on its own (no reader takes it for a record), so a corrupt
    file never needs more heap than one record."""
    buf = b""
    while True:
        chunk = f.read(128)
        if not chunk:
            if buf:
                yield buf
            return
        buf += chunk
        i = buf.find(b"\n")
        while i >= 0:
            yield buf[:i + 1]
            buf = buf[i + 1:]
            i = buf.find(b"\n")
        if len(buf) > _MAX_REC:
            yield buf
            buf = b""


_KEPT = ("id", "st", "att", "from", "acct", "to", "amt", "tok", "n", "hash", "mined", "blk",
         "err", "memo", "t", "ch", "of")
_MAX_ERR = 200  # characters of a record's error text kept


def compact(rec):
    """What the history keeps of a finished payment record: no signed bytes, no variants,
    no None values, no "hash" when it is the mined one, the error text cut to _MAX_ERR
    characters."""
    out = {}
    for k in _KEPT:
        if rec.get(k) is not None:  # absent reads as None
            out[k] = rec[k]
    if out.get("hash") == out.get("mined"):
        del out["hash"]  # the hash is the mined one: Page shows it again
    if isinstance(out.get("err"), str) and len(out["err"]) > _MAX_ERR:
        out["err"] = out["err"][:_MAX_ERR]
    return out


def seq_of(iid):
    """The invoice number of an id "<seq>-<account>", or None for other ids."""
    try:
        return int(str(iid).split("-")[0])
    except ValueError:
        return None


def archive(pays, keep_done, keep_failed, keep_ids):
    """Move a Payments' oldest finished records beyond keep_done (failed payments:
    keep_failed) into its history, oldest first; the caller saves its state next. A
    payment that an unfinished cancellation refers to stays until that one ends. A record
    the history cannot take (flash full) stays live and is tried again at the next save."""
    recs = pays._recs
    held = [r["of"] for r in recs.values() if r["st"] in ("prepared", "sent") and "of" in r]
    done = [r for r in recs.values()
            if r["st"] not in ("prepared", "sent") and r["id"] not in held]
    failed = [r for r in done if r["st"] == "failed" and "of" not in r]
    other = [r for r in done if not (r["st"] == "failed" and "of" not in r)]
    move = []
    for rs, keep in ((other, keep_done), (failed, keep_failed)):
        if len(rs) > keep:
            rs.sort(key=lambda r: r.get("t", 0))
            move += rs[:len(rs) - keep]
    move.sort(key=lambda r: r.get("t", 0))
    hist = pays.history if move else None
    for r in move:
        try:
            hist.add(compact(r))
        except Exception as e:  # flash full or failing: the record stays live
            pays.log("[pay] history: %s not archived: %s" % (r["id"], e))
            break
        if r["st"] == "confirmed" and "of" not in r:
            pays._paid.append(r["id"])
        pays._hi = max(pays._hi, seq_of(r["id"]) or 0)
        pays._arch += 1
        del recs[r["id"]]
    del pays._paid[:-keep_ids]


def key(rec):
    return "%s/%d" % (rec.get("id"), rec.get("att") or 1)


def asset(rec):
    return rec.get("tok") or "native"


class History:
    def __init__(self, store, segs=_SEGS, seg_bytes=_SEG_BYTES, log=None):
        self.store = store
        self.dir = "%s/%s" % (store.root, _DIR)
        self.max_segs = segs
        self.seg_bytes = seg_bytes
        self.log = log
        c = store.load(_CARRY)
        self._carry = c if isinstance(c, dict) else {"thru": -1, "n": 0, "confirmed": 0,
                                                     "paid": {}}
        try:
            os.mkdir(self.dir)
        except OSError:
            pass  # exists
        self._segs = []  # [[k, records, bytes], ...] oldest first
        self._sum = {}  # asset -> confirmed amount of every record ever appended
        self._recent = []
        self._pad = False  # the newest segment ends in a torn line
        ks = []
        for name in os.listdir(self.dir):
            try:
                ks.append(int(name))
            except ValueError:
                continue
        ks.sort()
        held = []
        for k in ks:
            if k <= self._carry["thru"]:  # carried before a power cut: finish dropping it
                self._remove(k)
            else:
                held.append(k)
        try:
            ok = self._resume(held)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            ok = False  # an index that is not one
        if not ok:
            self._rebuild(held)

    def _resume(self, held):
        """Take the index as saved, reading only what was appended after it; False if it
        does not match the files (then _rebuild)."""
        c = self._carry
        idx = c.get("segs")
        if idx is None or not isinstance(c["sum"], dict):
            return False  # a state from before the index
        ks = [s[0] for s in idx]
        last = ks[-1] if ks else c["thru"]
        new = [k for k in held if k not in ks]
        if [k for k in ks if k not in held] or [k for k in new if k < last]:
            return False
        for s in idx[:-1]:  # closed segments: appends only go to the newest
            if self._size(s[0]) != s[2]:
                return False
        grown = 0
        if idx:
            grown = self._size(last) - idx[-1][2]
            if grown < 0:
                return False
        self._segs = [list(s) for s in idx]
        self._sum = dict(c["sum"])
        self._recent = list(c.get("recent", ()))
        self._pad = c.get("pad") is True  # indexed up to a torn line (a rebuild's, a tail's)
        if grown:
            self._catch_up(self._segs[-1], self._segs[-1][2])
        for k in new:
            self._segs.append([k, 0, 0])
            self._catch_up(self._segs[-1], 0)
        if grown or new:
            self._save_index()
        return True

    def _rebuild(self, held):
        """The index from every segment held (a state from before the index, or files
        that do not match it): reads them all, once."""
        c = self._carry
        self._segs = []
        self._sum = dict(c["paid"])
        self._recent = list(c.get("recent", ()))
        self._pad = False
        if not held:
            return  # nothing to index yet: the first append saves it
        for k in held:
            self._segs.append([k, 0, 0])
            self._catch_up(self._segs[-1], 0)
        if self.log:
            self.log("[history] index rebuilt from %d segments" % len(held))
        self._save_index()

    def _catch_up(self, seg, pos):
        """Add what segment seg holds from byte pos on to the index (counts, sums, recent
        keys); note whether it ends in a torn line."""
        last = b"\n"
        try:
            with open(self._path(seg[0]), "rb") as f:
                f.seek(pos)
                for ln in _lines(f):
                    seg[2] += len(ln)
                    last = ln[-1:]
                    rec = _parse(ln)
                    if rec is not None:
                        seg[1] += 1
                        self._count(rec)
        except OSError:
            pass
        self._pad = seg[2] > 0 and last != b"\n"

    def _count(self, rec):
        self._remember(key(rec))
        if rec.get("st") == "confirmed":
            a = asset(rec)
            self._sum[a] = self._sum.get(a, 0) + (rec.get("amt") or 0)

    def _state(self, carry, segs):
        """The "history" state file: the carried totals and the index."""
        return {"thru": carry["thru"], "n": carry["n"], "confirmed": carry["confirmed"],
                "paid": carry["paid"], "segs": segs, "sum": self._sum,
                "recent": self._recent, "pad": self._pad}

    def _save_index(self):
        try:
            self.store.save(_CARRY, self._state(self._carry, self._segs))
        except Exception as e:  # noqa: BLE001 - the segments hold the truth: caught up at start
            if self.log:
                self.log("[history] index not saved (%r): read again at the next start" % (e,))

    # ---- files ----

    def _path(self, k):
        return "%s/%d" % (self.dir, k)

    def _remove(self, k):
        try:
            os.remove(self._path(k))
        except OSError:
            pass

    def _size(self, k):
        try:
            return os.stat(self._path(k))[6]
        except OSError:
            return -1

    def _read_seg(self, k, skip, limit):
        """Valid records of segment k after skipping `skip` of them, in batches of lines
        read with the file closed in between."""
        pos = 0
        while limit is None or limit > 0:
            batch = []
            try:
                with open(self._path(k), "rb") as f:
                    f.seek(pos)
                    for ln in _lines(f):
                        pos += len(ln)
                        rec = _parse(ln) if not skip else (1 if _valid(ln) else None)
                        if rec is None:
                            continue
                        if skip:
                            skip -= 1
                            continue
                        batch.append(rec)
                        if len(batch) >= _BATCH or (limit is not None
                                                     and len(batch) >= limit):
                            break
            except OSError:  # rotated out meanwhile
                return
            if not batch:
                return
            for rec in batch:
                yield rec
            if limit is not None:
                limit -= len(batch)

    def _remember(self, k):
        if k in self._recent:
            return
        self._recent.append(k)
        if len(self._recent) > _RECENT:
            self._recent.pop(0)

    # ---- writing ----

    def has(self, rec):
        """True if rec was among the last records appended."""
        return key(rec) in self._recent

    def add(self, rec):
        """Append rec (a dict); False if it was appended before (not again). Raises
        HistoryError if it is larger than a record may be, OSError if the flash fails."""
        if self.has(rec):
            return False
        line = _line(rec)
        if len(line) > _MAX_REC:
            raise HistoryError("record %s is %d bytes, more than %d" % (key(rec), len(line),
                                                                        _MAX_REC))
        if not self._segs or self._segs[-1][2] + len(line) + 1 > self.seg_bytes:
            while len(self._segs) >= self.max_segs:
                self._drop_oldest()
            k = self._segs[-1][0] + 1 if self._segs else self._carry["thru"] + 1
            self._segs.append([k, 0, 0])
            self._pad = False
        seg = self._segs[-1]
        with open(self._path(seg[0]), "ab") as f:
            if self._pad:  # the last line was torn: spoil and end it, so it never counts
                f.write(b"#\n")  # (even if only its newline was lost) and this one stands
                seg[2] += 2  # alone; the live state still holds that record to move again
                self._pad = False
            f.write(line)
        seg[1] += 1
        seg[2] += len(line)
        self._count(rec)
        self._save_index()
        return True

    def _drop_oldest(self):
        k = self._segs[0][0]
        c = self._carry
        new = {"thru": k, "n": c["n"], "confirmed": c["confirmed"], "paid": dict(c["paid"])}
        for rec in self._read_seg(k, 0, None):
            new["n"] += 1
            if rec.get("st") == "confirmed":
                new["confirmed"] += 1
                a = asset(rec)
                new["paid"][a] = new["paid"].get(a, 0) + (rec.get("amt") or 0)
        # durable before the segment goes (the index without it, the sums unchanged)
        self.store.save(_CARRY, self._state(new, self._segs[1:]))
        self._carry = new
        self._remove(k)
        self._segs.pop(0)
        if self.log:
            self.log("[history] segment %d rotated out: %d records carried in all"
                     % (k, new["n"]))

    # ---- reading ----

    def count(self):
        return sum(s[1] for s in self._segs)

    def bytes(self):
        return sum(s[2] for s in self._segs)

    def carried(self):
        c = self._carry
        return {"n": c["n"], "confirmed": c["confirmed"], "paid": dict(c["paid"])}

    def paid(self, asset):
        """The confirmed amount in asset of every record ever appended (carried + held),
        from the index."""
        return self._sum.get(asset, 0)

    def read(self, offset=0, limit=None):
        """Records oldest first from the offset-th one held, at most `limit`."""
        for s in [list(x) for x in self._segs]:
            if limit is not None and limit <= 0:
                return
            if offset >= s[1]:
                offset -= s[1]
                continue
            for rec in self._read_seg(s[0], offset, limit):
                yield rec
                if limit is not None:
                    limit -= 1
            offset = 0

    def find(self, invoice_id):
        """The newest record of invoice_id held, or None; reads the whole history."""
        iid = str(invoice_id)
        needle = json.dumps(iid).encode()
        found = None
        for s in [x[0] for x in self._segs]:
            try:
                with open(self._path(s), "rb") as f:
                    for ln in _lines(f):
                        if needle in ln:
                            rec = _parse(ln)
                            if rec is not None and rec.get("id") == iid:
                                found = rec
            except OSError:
                continue
        return found
