# Boot script (VPLUG_MAIN of tools/vplug.py; runs on MicroPython) for the heap each
# long-lived object of the app holds at idle: the app boots from its flash (the state a
# bench run left: provisioned, a payment made) in a fresh process and runs as main.py
# runs it; after SETTLE_S seconds at idle, everything is released one at a time (every
# reference dropped, then gc.collect()) and what each release frees is printed as
# "[objects] <what> <bytes>". Order: each asyncio task (cancelled and let finish), the
# HTTP server's tasks and socket, then the plug's objects, those that hold others first
# (settlement before billing and tariff, payments before chain and wallet, meter before
# ledger and front ends). The HTTP server's own object and routes, and the board's front
# ends (the board module may hold them too), are measured as built: what web.build() and
# board.front_ends() leave held. "[objects] done" ends it. Environment:
#   PLUG_MODULES  the modules the running app had loaded, imported first so that what
#                 their own objects cost is in no figure (tools/bench/app_modules.py)
#   SETTLE_S      seconds at idle before releasing (default 8)
# Error margin: a figure is exact for what only that object reached (gc.collect() and
# gc.mem_alloc(), in GC blocks of 32 bytes on 64 bits); an object still referenced from
# somewhere not released yet (or a stale stack slot, the GC being conservative) frees
# with a later row instead, so rows are +- that, and their sum is checked against the
# total.
import gc
import os

import asyncio

try:
    import board
except ImportError:  # on the host: boards/board_<PLUG_BOARD>.py, as main.py
    board = __import__("board_" + (os.getenv("PLUG_BOARD") or "sim"))
from plug import app, repl, supervise, web

for _n in (os.getenv("PLUG_MODULES") or "").split():
    try:
        __import__(_n)
    except Exception:  # noqa: BLE001 - an ESP32-only module
        pass

SETTLE_S = int(os.getenv("SETTLE_S") or "8")
REG = []  # [name, real task]: only this and the scheduler hold a named task
_names = []
_create = asyncio.create_task


class _Handle:
    """What app.run() and repl.start() get for a named task: cancel() and done() only,
    so their own lists do not keep the task (and its frame) alive once released."""

    def __init__(self, i):
        self.i = i

    def cancel(self):
        t = REG[self.i][1]
        if t is not None:
            t.cancel()

    def done(self):
        t = REG[self.i][1]
        return t is None or t.done()


def _task(coro):
    if not _names:
        return _create(coro)
    REG.append([_names.pop(), _create(coro)])
    return _Handle(len(REG) - 1)


_forever = supervise.forever


def _named_forever(name, make, *a, **k):
    _names.append(name)
    return _forever(name, make, *a, **k)


import sys  # noqa: E402

for _m in list(sys.modules.values()):  # every module that took `forever` by name
    if getattr(_m, "forever", None) is _forever:
        _m.forever = _named_forever
_repl_start = repl.start


def _named_repl(*a, **k):
    _names.append("repl")
    return _repl_start(*a, **k)


repl.start = _named_repl
asyncio.create_task = _task
SRV = []
_build = web.build


def used():
    gc.collect()
    gc.collect()
    return gc.mem_alloc()


def _built(plug):
    a = used()
    srv = _build(plug)
    SRV.append(srv)
    print("[objects] http-server:object+routes %d" % (used() - a))
    return srv


web.build = _built
_front_ends = board.front_ends


def _built_front_ends(*a, **k):  # the board module may keep them: measured as built
    a0 = used()
    fe = _front_ends(*a, **k)
    print("[objects] board:front-ends-as-built %d" % (used() - a0))
    return fe


board.front_ends = _built_front_ends
# those that hold others first; then every other attribute of the plug one at a time
# (what a feature added); then what everything else holds
FIRST = ("settlement", "payments", "tariff", "billing", "chain", "supply", "wallet", "out",
         "cal", "meter", "net", "guard")
LAST = ("ledger", "front_ends", "cfgm", "store", "clock", "board")


def _objects(p):
    """The plug's attributes that hold objects, in release order."""
    rest = sorted(k for k in p.__dict__ if k not in FIRST and k not in LAST)
    return [n for n in FIRST + tuple(rest) + LAST
            if getattr(p, n, None) is not None
            and not isinstance(getattr(p, n), (bool, int, float))]


async def _main():
    print("[objects] before-plug %d" % used())  # the modules, asyncio, the bench's own
    p = app.Plug(board, state="state")
    runner = _create(p.run())
    await asyncio.sleep(SETTLE_S)
    names = _objects(p)
    rows = [0] * (len(REG) + 1 + len(names))  # made before: nothing is allocated between
    total = used()  # a measurement and the next but what the release drops
    for i in range(len(REG)):
        a = used()
        REG[i][1].cancel()
        for _ in range(20):
            await asyncio.sleep_ms(10)
            if REG[i][1].done():
                break
        REG[i][1] = None
        await asyncio.sleep_ms(10)
        rows[i] = a - used()
    k = len(REG)
    if SRV:
        a = used()
        SRV[0].close()
        await asyncio.sleep_ms(50)
        rows[k] = a - used()
    for j in range(len(names)):
        a = used()
        setattr(p, names[j], None)
        rows[k + 1 + j] = a - used()
    print("[objects] total-in-use %d" % total)
    for i in range(len(REG)):
        print("[objects] task:%s %d" % (REG[i][0], rows[i]))  # its frame, what only it holds
    print("[objects] http-server:tasks+socket %d" % rows[k])
    for j in range(len(names)):
        print("[objects] plug.%s %d" % (names[j], rows[k + 1 + j]))
    print("[objects] released %d of %d" % (sum(rows), total))
    print("[objects] done")
    runner.cancel()


try:
    asyncio.run(_main())
except (Exception, SystemExit) as e:  # noqa: BLE001 - reported, the bench reads the serial
    sys.print_exception(e)
    print("[objects] done")
