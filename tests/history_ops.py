# Device side of tests/test_history.py, run on MicroPython (64 KB heap):
#   micropython history_ops.py <dir> <segs> <seg_bytes>  < ops.json
# ops: ["add", n, pad, st, tok] appends n records (ids counting up, "amt" = their number,
# `pad` characters of error text, state st, token tok or None); ["tear", k] cuts k bytes
# off the newest segment file, as a power cut mid-append; ["flip", i] flips a bit in the
# i-th byte of the newest segment (mod its size); ["restart"] builds History again from
# the flash; ["read", offset, limit] pages. After each op one JSON line:
#   [count held, carried, [ids read (read) or null], [segment file sizes], id seen twice]
import json
import os
import sys

from plug.history import History
from plug.store import Store

root, segs, seg_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
store = Store(root)


def make():
    return History(store, segs=segs, seg_bytes=seg_bytes)


def newest():
    d = root + "/history"
    ks = sorted(int(x) for x in os.listdir(d))
    return d + "/%d" % ks[-1] if ks else None


def sizes():
    d = root + "/history"
    return [os.stat(d + "/" + x)[6] for x in sorted(os.listdir(d), key=int)]


h = make()
nxt = 0
for op in json.loads(sys.stdin.read()):
    got = None
    if op[0] == "add":
        for _ in range(op[1]):
            h.add({"id": "%d-0" % nxt, "st": op[3], "att": 1, "amt": nxt, "tok": op[4],
                   "err": "x" * op[2]})
            nxt += 1
    elif op[0] == "lag":  # n appends whose index saves are lost (a power cut after each
        old = store.load("history")  # append, before its index reached the flash)
        for _ in range(op[1]):
            h.add({"id": "%d-0" % nxt, "st": op[3], "att": 1, "amt": nxt, "tok": op[4],
                   "err": "x" * op[2]})
            nxt += 1
        if old is not None and old["thru"] == store.load("history")["thru"]:
            store.save("history", old)  # (a rotation's save is durable before its removal)
        h = make()
    elif op[0] in ("tear", "flip"):
        p = newest()
        if p:
            with open(p, "rb") as f:
                data = bytearray(f.read())
            if op[0] == "tear":
                data = data[:max(0, len(data) - op[1])]
            elif data:
                data[op[1] % len(data)] ^= 0x10
            with open(p, "wb") as f:
                f.write(data)
        h = make()
    elif op[0] == "restart":
        h = make()
    elif op[0] == "read":
        got = [r["id"] for r in h.read(op[1], op[2])]
    ids = [r["id"] for r in h.read()]
    print(json.dumps([h.count(), h.carried(), got, sizes(), len(ids) != len(set(ids)),
                      [h.paid("native"), h.paid(TOKEN)]]))
