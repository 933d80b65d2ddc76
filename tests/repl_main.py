# A small app for REPL tests, run by the virtual plug: a ticking counter task (the
# stand-in for the metering loop) and the serial REPL, both on one asyncio loop.
import asyncio
import time

from plug import repl

state = {"ticks": 0, "max_gap_ms": 0, "log": False, "flood": 0}


async def ticker():
    last = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(20)
        now = time.ticks_ms()
        state["max_gap_ms"] = max(state["max_gap_ms"], time.ticks_diff(now, last))
        last = now
        state["ticks"] += 1
        if state["log"] and state["ticks"] % 25 == 0:
            repl.log("[tick] %d" % state["ticks"])
        if state["flood"]:  # a chatty app printing straight to the serial
            print("F" * state["flood"])


async def later(x):
    await asyncio.sleep_ms(50)
    return x * 2


async def main():
    asyncio.create_task(ticker())
    ns = {"state": state, "later": later}
    await repl.start(ns, banner="repl test app ready\r\n")


try:
    asyncio.run(main())
except KeyboardInterrupt:  # VirtualPlug.stop(): a clean stop, the app may save its state
    with open("stopped.txt", "w") as f:
        f.write("%d" % state["ticks"])
    raise  # then power off: the virtual plug's ROM ends the process
