# Device side of tests/test_alloc_bound.py (MicroPython unix port, run in a sim flash dir):
#   micropython alloc_plug.py PORT [HOLE]
# The whole app on the sim board (5 channels) with a realistic state seeded on its flash
# (live and archived payments, billed lines, open invoices, a day of rate intervals), its
# real HTTP server on 127.0.0.1:PORT and an in-process client. Every request and store
# save runs once to warm up (lazy imports, caches), then the heap is fragmented: HOLE-byte
# bytearrays (with their object header, HOLE bytes of heap each) are allocated until none
# fits, then smaller pieces until nothing fits, then every other HOLE one is dropped, so
# no free block is larger than HOLE bytes. Then everything runs again. On stdout:
#   B <name>, H <hex> lines (the answer as read), R <name> <status> <max free before>
#   <max free after> (bytes, found by allocation) for each request;
#   S <name> ok|MemoryError <max free before> <max free after> for each store save/load;
#   X <name> ok|MemoryError for the controls (which must fail);
#   O history opens <n> (files history.py opened from the boot to the end of the first
#   /status), O kept after the answers: <modules the answers should have let go of>,
#   J status same|differs (json_chunks == json.dumps), J stream same|differs (the streamed
#   /status writer == json.dumps(plug.status())), then P <json.dumps of a status>
#   that the answer to B status_pair must equal; M <tag> ... M end around mem_info().
import asyncio
import binascii
import gc
import json
import os
import sys

import micropython

import board_sim as board
import heap_holes  # tools/
from plug.app import Plug
try:
    from plug.http_response import json_chunks
except ImportError:  # firmware from before streamed JSON answers (the test's proof run)
    def json_chunks(obj):
        yield json.dumps(obj)
from plug.server import Response, text_response
from plug.settle import encode_memo
from plug.store import Store

PORT = int(sys.argv[1])
HOLE = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
BLOCK = 32 if sys.maxsize > 2**32 else 16  # bytes per GC block (4 words)
STATE = "state"
T0 = 820000000  # plug seconds, late 2025
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
KEYS = ("M1/A", "M1/B", "M2/1", "M2/2", "M2/3")
TOKEN = "bearer s3cret"


def _h(i, salt):
    return "0x%064x" % (i * 7919 + salt)


def _memo_items(seq):
    return [(k, 1500000000 + seq * 1000 + i, 210000000000000 + i, 300000000000 + seq * 7)
            for i, k in enumerate(KEYS)]


def _rec(seq, st, addr):
    items = _memo_items(seq)
    amt = sum(x[3] for x in items)
    t = T0 + seq * 3600
    h = _h(seq, 1)
    return {"id": "%d-0" % seq, "st": st, "from": addr, "acct": 0, "to": PAYEE, "amt": amt,
            "tok": None, "memo": "0x" + binascii.hexlify(encode_memo(seq, t - 3600, t,
                                                                     items)).decode(),
            "n": seq, "gas": 24532, "v": [{"h": h, "fee": [2000000000, 1000000000]}],
            "hash": h, "mined": h if st == "confirmed" else None,
            "blk": 1000 + seq if st == "confirmed" else None,
            "err": None if st == "confirmed" else "reverted: receipt status 0",
            "att": 1, "t": t, "tb": 0, "ch": None}


def seed(addr):
    """A plug that has paid for a while: 40 payments in the history, 8 confirmed and 2
    failed live ones, 30 ids of confirmed invoices, 12 billed lines per channel, 3 open
    invoices, a day of 15-minute rates."""
    from plug.history import History, compact

    store = Store(STATE)
    hist = History(store)
    for seq in range(1, 41):
        hist.add(compact(_rec(seq, "confirmed", addr)))
    recs = {}
    for seq in range(41, 51):
        r = _rec(seq, "failed" if seq in (44, 47) else "confirmed", addr)
        recs[r["id"]] = r
    store.save("payments", {"recs": recs, "paid": ["%d-0" % s for s in range(11, 41)],
                            "day": T0 // 86400, "spent": {"native": 12345678901234567},
                            "hi": 40, "arch": 40})
    lines = {}
    keys = {}
    for i, k in enumerate(KEYS):
        t = T0 + 51 * 3600
        lines[k] = [[t + j * 300, t + j * 300 + 300, 41666 + j * 13 + i,
                     210000000000000 + j, 8749860 + j, 0] for j in range(12)]
        keys[k] = [t + 3600, 123456789, 900000000000 + i, 150000000000000 + i]
    inv = []
    for s in (51, 52, 53):
        items = _memo_items(s)
        t = T0 + s * 3600
        inv.append({"id": "%d-0" % s, "seq": s, "account": 0, "pid": 0, "payee": PAYEE,
                    "token": None, "amount": sum(x[3] for x in items), "t0": t - 3600,
                    "t1": t, "items": [list(x) for x in items],
                    "memo": binascii.hexlify(encode_memo(s, t - 3600, t, items)).decode()})
    store.save("billing", {"v": 1, "keys": keys, "lines": lines, "inv": inv, "seq": 53})
    desc = {"name": "Example Energy", "payee": PAYEE, "chain_id": 31337, "token": None,
            "symbol": "ETH", "decimals": 18, "format": "native",
            "rates_url": "http://127.0.0.1:8088/rates.json",
            "signer": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"}
    sched = [[T0 + 50 * 3600 + i * 900, T0 + 50 * 3600 + (i + 1) * 900,
              200000000000000 + i * 1000000000] for i in range(96)]
    store.save("tariff", {"prov": [[T0, desc]], "base": 0, "sched": sched, "issued": T0})


def max_free():
    """Bytes of the largest free block, found by allocation (mem() prints
    micropython.mem_info()'s "max free sz" between markers the host parses)."""
    return heap_holes.largest(BLOCK)


def mem(tag):
    gc.collect()
    print("M", tag)
    micropython.mem_info()
    print("M end")


def fragment(hole):
    """Fill the heap with hole-byte pieces, then smaller ones until not one block is free,
    then free every other hole-sized one. Pieces are tuples (one allocation each, of
    2 + n words); a piece allocated after another lies above it (first fit), so freed
    pieces never touch each other."""
    gc.collect()
    word = BLOCK // 4
    head = None  # [previous node, piece]: lists whose pieces can be dropped later
    big = 0
    while True:
        try:
            piece = (None,) * (hole // word - 2)
            head = [head, piece]
        except MemoryError:
            break
        big += 1
    piece = None
    tail = None  # the rest: a chain of (previous, piece) tuples, down to single blocks
    small = 0
    n = hole // word - 2
    while n >= 0:
        try:
            tail = (tail, (None,) * n if n else None)
            small += 1
        except MemoryError:
            n = n // 2 - 1 if n > 1 else -1
    node = head
    i = 0
    while node is not None:
        if i & 1:
            node[1] = None
        i += 1
        node = node[0]
    gc.collect()
    return head, tail, big, small


_plugs = [None]


def tighten(hole):
    """Fill every free block larger than hole (the app freed something next to a hole)
    with pieces one block larger than hole, until none fits: no free block above hole."""
    word = BLOCK // 4
    while True:
        try:
            _plugs[0] = (_plugs[0], (None,) * (hole // word - 1))
        except MemoryError:
            return


async def request(path, method="GET", body=b"", auth=None):
    """The status of one request over a real socket; the answer is printed as it comes,
    256 bytes at a time (H <hex> lines)."""
    r, w = await asyncio.open_connection("127.0.0.1", PORT)
    head = "%s %s HTTP/1.1\r\nHost: plug\r\nContent-Length: %d\r\n" % (method, path, len(body))
    if auth:
        head += "Authorization: %s\r\n" % auth
    w.write(head.encode() + b"\r\n" + body)
    await w.drain()
    first = b""
    while True:
        d = await r.read(256)
        if not d:
            break
        if len(first) < 16:
            first += d[:16]
        print("H", binascii.hexlify(d).decode())
        d = None
    w.close()
    await w.wait_closed()
    return int(first[9:12]) if first[:5] == b"HTTP/" else 0


REQUESTS = (
    ("status", "/status", "GET", b"", None),
    ("metrics", "/metrics", "GET", b"", None),
    ("ledger", "/ledger?limit=200", "GET", b"", None),
    ("ledger_page", "/ledger?offset=10&limit=20", "GET", b"", None),
    ("ledger_csv", "/ledger?format=csv", "GET", b"", None),
    ("switch", "/switch", "GET", b"", None),
    ("switch_post", "/switch", "POST", b'{"channel": "M1/B", "on": false}', TOKEN),
    ("switch_bad", "/switch", "POST", b'{"channel": "M9/Z", "on": true}', TOKEN),
    ("not_found", "/nothing-here", "GET", b"", None),
    ("bad_query", "/ledger?limit=0", "GET", b"", None),
    ("status_head", "/status", "HEAD", b"", None),
)


ENVELOPE = {"version": 7, "plug": "0x" + "35" * 20, "signature": "0x" + "ab" * 65}


def store_steps(plug):
    """The app's own saves, then a load and a save of every state file on the flash."""
    st = plug.store
    n = [900]

    def hist():
        n[0] += 1
        plug.payments.history.add({"id": "%d-0" % n[0], "st": "confirmed", "amt": 1,
                                   "to": PAYEE, "memo": "0x" + "ab" * 120})

    steps = [("ledger checkpoint", plug.meter.checkpoint),
             ("billing save", plug.billing.save),
             ("payments save", plug.payments._save),
             ("tariff save", plug.tariff._save),
             ("calibration save", plug.cal.save),
             ("config save", lambda: st.save("config", dict(ENVELOPE,
                                                            config=plug.cfgm.config))),
             ("history carried save", lambda: st.save("history", {
                 "thru": -1, "n": 120, "confirmed": 117, "paid": {"native": 10**18 + 12345},
                 "recent": ["%d-0" % i for i in range(32)]})),
             ("history append", hist)]
    for name in sorted(set(n.rsplit(".", 1)[0] for n in os.listdir(STATE)
                           if n.endswith(".0") or n.endswith(".1"))):
        steps.append(("load+save " + name, lambda name=name: st.save(name, st.load(name))))
    return steps


def run_step(fn):
    try:
        fn()
        return "ok"
    except MemoryError:
        return "MemoryError"


async def exercise(plug, measured):
    for name, path, method, body, auth in REQUESTS:
        if measured:
            tighten(HOLE)
        before = max_free() if measured else 0
        if measured:
            mem("before " + name)
        print("B", name)
        st = await request(path, method, body, auth)
        gc.collect()
        after = max_free() if measured else 0
        if measured:
            mem("after " + name)
        print("R", name, st, before, after)
    print("O kept after the answers: %s" % " ".join(
        m for m in ("plug.metrics", "plug.prometheus", "plug.app_status", "plug.history")
        if m in sys.modules))
    for name, fn in store_steps(plug):
        if measured:
            tighten(HOLE)
        before = max_free() if measured else 0
        res = run_step(fn)
        print("S", name.replace(" ", "_"), res, before, max_free() if measured else 0)


async def main():
    addr = None
    if STATE not in os.listdir():
        os.mkdir(STATE)
    # the wallet is made at the first boot: its address goes into the seeded records
    plug = Plug(board, state=STATE)
    addr = plug.address(0)
    plug = None
    gc.collect()
    seed(addr)
    import plug.history as H  # every file history.py opens (its segments), counted from
    opened = []               # this boot to the end of its first /status

    def counting_open(path, *a):
        opened.append(path)
        return open(path, *a)

    H.open = counting_open
    plug = Plug(board, state=STATE)
    for _ in range(3):
        plug.meter.read_once()
    import hashlib

    plug.cfgm.config["control"]["token_sha256"] = binascii.hexlify(
        hashlib.sha256(TOKEN[7:].encode()).digest()).decode()
    from plug import web

    srv = web.build(plug)
    srv.max_connections = 2
    # controls: answers built in one piece, as /status and /metrics were
    srv.route("GET", "/control_3k", lambda req: text_response("x" * 3072))
    srv.route("GET", "/control_old_status", lambda req: Response(json.dumps(plug.status()),
                                                                  content_type="x"))
    same = {}

    def status_pair(req):
        st = plug.status()
        same["dumps"] = json.dumps(st)
        same["chunks"] = "".join(json_chunks(st))
        same["stream"] = stream_same()
        return st

    def stream_same():
        """GET /status's streamed writer gives json.dumps(plug.status())'s very text (the
        free heap, the uptime and the clock held still between the two)."""
        import plug.app_status as A

        if not hasattr(A, "status_chunks"):  # firmware from before the streamed /status
            return False

        class Still:
            def mem_free(self):
                return 12345

            def ticks_ms(self):
                return 0

            def ticks_diff(self, a, b):
                return 61000

        gc_, time_, now = A.gc, A.time, plug.clock.time()
        A.gc = A.time = Still()
        plug.clock.time = lambda: now
        try:
            return "".join(A.status_chunks(plug)) == json.dumps(plug.status())
        finally:
            A.gc, A.time = gc_, time_
            del plug.clock.time

    srv.route("GET", "/status_pair", status_pair)
    await srv.start("127.0.0.1", PORT)
    # warm up: every request and save once, lazy imports done, caches filled
    print("B status")
    await request("/status")
    print("O history opens %d" % len(opened))
    del H.open
    print("B status_pair")
    await request("/status_pair")
    print("J status", "same" if same["dumps"] == same["chunks"] else "differs")
    print("J stream", "same" if same["stream"] else "differs")
    print("P", same["dumps"])  # the host compares the answer with this text
    same = None
    await exercise(plug, False)
    for name in ("control_3k", "control_old_status"):
        print("B", name)
        await request("/" + name)
    print("W warm")
    mem("before fragmenting")
    keep = fragment(HOLE)
    print("F", keep[2], keep[3], max_free())
    mem("fragmented")
    await exercise(plug, True)
    for name in ("control_3k", "control_old_status"):
        tighten(HOLE)
        print("B", name)
        st = await request("/" + name)
        print("X", name, "ok" if st == 200 else "MemoryError" if st == 503 else st)
    tighten(HOLE)
    print("X json.dumps(status)", run_step(lambda: json.dumps(plug.status())))
    tighten(HOLE)
    print("X json.dumps(billing)", run_step(lambda: json.dumps(plug.billing.state)))
    print("F", keep[2], keep[3], max_free())
    srv.close()
    print("DONE")


asyncio.run(main())
