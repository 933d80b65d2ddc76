# A small app for HTTP server tests: the server with a few routes, beside a ticking task
# (the stand-in for the metering loop). Run as: micropython server_main.py PORT [MAXBODY]
import asyncio
import gc
import sys
import time

from plug import server
from plug.prometheus import CONTENT_TYPE, prometheus
from plug.server import HTTPError, Response

state = {"ticks": 0, "max_gap_ms": 0}


async def ticker():
    last = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(20)
        now = time.ticks_ms()
        state["max_gap_ms"] = max(state["max_gap_ms"], time.ticks_diff(now, last))
        last = now
        state["ticks"] += 1


def status(req):
    gc.collect()
    return {"ticks": state["ticks"], "max_gap_ms": state["max_gap_ms"],
            "mem_free": gc.mem_free(), "stats": srv.stats, "active": srv.active}


def echo(req):
    return {"len": len(req.body), "json": req.json(), "query": req.query}


def boom(req):
    raise RuntimeError("handler bug")


def hog(req):
    return {"n": len(bytearray(1 << 20))}  # more than the whole heap: a real MemoryError


def teapot(req):
    raise HTTPError(422, "the %s parameter is missing" % "x")


async def slow(req):
    await asyncio.sleep_ms(int(req.query.get("ms", "100")))
    return "slept\n"


def rows(req):
    n = int(req.query.get("n", "3"))
    return Response(server.csv_lines(["t", "key", "uwh"],
                                     ((i, "M1/A", i * 1000) for i in range(n))),
                    content_type=server.CSV)


def metrics(req):
    fams = [("plug_ticks_total", "counter", "Ticks of the test loop", [(None, state["ticks"])]),
            ("plug_power_watts", "gauge", "Active power",
             [({"device": "M1", "channel": "A"}, 230.5), ({"device": "M1", "channel": "B"}, -12)])]
    return server.text_response(prometheus(fams), content_type=CONTENT_TYPE)


srv = server.Server(max_request_bytes=int(sys.argv[2]) if len(sys.argv) > 2 else 2048,
                    max_connections=4, timeout_s=2, head_timeout_s=1)
srv.route("GET", "/status", status)
srv.route("GET", "/query", lambda req: req.query)
srv.route("POST", "/echo", echo)
srv.route("GET", "/boom", boom)
srv.route("GET", "/teapot", teapot)
srv.route("GET", "/hog", hog)
srv.route("GET", "/slow", slow)
srv.route("GET", "/rows", rows)
srv.route("GET", "/metrics", metrics)
srv.route("GET", "/empty", lambda req: None)


async def main():
    asyncio.create_task(ticker())
    await srv.start("127.0.0.1", int(sys.argv[1]))
    print("READY")
    while True:
        await asyncio.sleep(3600)


asyncio.run(main())
