"""make demo: a virtual plug pays for a simulated day of its own energy.

Starts anvil and the reference tariff server, starts a virtual plug (the firmware on
the MicroPython unix port, its serial REPL on a pty), deploys the firmware onto it with
mpremote over that pty, records its owner over serial, pushes the owner's signed config
over HTTP, funds its wallet, and lets it meter five channels through a day at 1440x
(a minute per day) with a rate change at noon. Then it prints what each channel used and
was billed, the payments with their transaction hashes, and checks on chain that the
provider received exactly what the plug's ledger says it paid. Exit status 0 only then.
"""

import calendar
import sys
import time

from .scenario import ETH, World

SPEED = 1440  # one simulated day per real minute


def fmt_eth(wei):
    """Exact: the sums printed below add up to the last wei."""
    return "%d.%018d" % divmod(wei, ETH)


def snapshot(plug, world, tries=20):
    """Status, ledger and the payee's balance at one moment with no payment in flight."""
    for _ in range(tries):
        st, led = plug.status(), plug.ledger()
        received = world.payee_received()
        if not st["payments"]["pending"] and plug.ledger()["payments"] == led["payments"]:
            return st, led, received
        time.sleep(0.3)
    raise SystemExit("demo: a payment stayed pending")


def billed_per_channel(led):
    out = {}
    for inv in led["invoices"]:
        for it in inv["items"]:
            out[it["channel"]] = out.get(it["channel"], 0) + it["amount"]
    for line in led["unsettled"]:
        out[line["channel"]] = out.get(line["channel"], 0) + line["amount"]
    return out


def main(argv=None):
    import signal

    # SIGTERM unwinds the World as Ctrl-C does: anvil, servers and plug stop, and its
    # /tmp/plug-world-* folder goes
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    t0 = time.time()
    day = calendar.timegm(time.gmtime()[:3] + (0, 0, 0)) - 86400  # yesterday, 00:00 UTC

    def say(msg):
        print("[%5.1fs] %s" % (time.time() - t0, msg), flush=True)

    with World(day, log=say) as w:
        say("anvil on %s, tariff server on %s (0.0001 ETH/kWh, 0.0002 from noon)"
            % (w.devnet.url, w.tariff.url))
        plug = w.add_plug("plug1", speed=SPEED)
        say("virtual plug up: serial %s, http %s" % (plug.serial, plug.url))
        say("open its page while the demo runs: %s/  (metrics: %s/metrics)"
            % (plug.url, plug.url))
        addr = plug.provision()
        say("owner %s provisioned, signed config v1 in force, wallet %s funded with 10 ETH"
            % (w.owner_address, addr))
        start = plug.status()["device"]["time"]
        end = start + 86400
        while True:
            st = plug.status()
            now = st["device"]["time"]
            kwh = sum(c["import_uwh"] for c in st["channels"].values()) / 1e9
            p = st["payments"]
            say("sim %02d:%02d  %.2f kWh imported  %s confirmed, %d pending"
                % ((now - start) // 3600 % 24, (now - start) // 60 % 60, kwh,
                   plural(len(p["confirmed"]), "payment"), len(p["pending"])))
            if now >= end:
                break
            time.sleep(6)
        st, led, received = snapshot(plug, w)
        billed = billed_per_channel(led)
        print()
        print("%-8s %12s %12s %22s" % ("channel", "import kWh", "export kWh", "billed (ETH)"))
        for key in sorted(st["channels"]):
            c = st["channels"][key]
            print("%-8s %12.3f %12.3f %22s" % (key, c["import_uwh"] / 1e9, c["export_uwh"] / 1e9,
                                              fmt_eth(billed.get(key, 0))))
        print()
        paid = 0
        for pay in sorted(led["payments"], key=lambda x: x["n"] if x["n"] is not None else -1):
            if pay["st"] == "confirmed":
                paid += pay["amt"]
            print("payment %-6s %-10s %s ETH  %s" % (pay["id"], pay["st"], fmt_eth(pay["amt"]),
                                                     pay["mined"] or pay["hash"]))
        total_billed = sum(billed.values())
        accrued = total_billed - paid
        print()
        print("billed %s ETH = paid %s ETH + accrued, not yet due %s ETH"
              % (fmt_eth(total_billed), fmt_eth(paid), fmt_eth(accrued)))
        print("provider %s received on chain %s ETH" % (w.payee, fmt_eth(received)))
        ok = received == paid and paid > 0 and accrued >= 0
        say("%s: on-chain receipts %s the plug's confirmed payments"
            % ("OK" if ok else "FAILED", "equal" if received == paid else "DIFFER FROM"))
        print("the plug's page was %s/ and its metrics %s/metrics (they stop with the "
              "demo)" % (plug.url, plug.url))
        return 0 if ok else 1


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


if __name__ == "__main__":
    sys.exit(main())
