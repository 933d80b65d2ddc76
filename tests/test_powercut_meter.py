"""Power cuts: the metering process (tests/powercut_plug.py on the MicroPython unix port:
real drivers on simulated chips, real store, ledger and meter, sim clock 20x real time) is
SIGKILLed at random moments, some of them right as a checkpoint is being written, and
booted again on the same state directory, 36 times. Per channel and direction:

- totals never decrease, across reboots and within a run;
- totals never exceed the true energy of the simulated loads;
- a power cut loses at most one checkpoint interval of energy (plus the read in flight);
- a clean stop (SIGINT) loses nothing.

The truth is exact: the energy delivered up to the instant of each read's energy register
access, sampled by the simulated chip inside that access (a loaded host that stalls the
process before or after it changes nothing), on chips without a power offset, whose
registers then hand out exactly the delivered energy.
"""

import ast
import os
import random
import select
import signal
import subprocess
import time

import pytest

from meter_support import compiled_tree
from tools import mp

SPEED = 50.0  # sim seconds per real second
CHECKPOINT_S = 10  # sim seconds
START = 800000000
RUNS = 36
# x64 objects are twice the ESP32's size and the chip simulators (hardware, not firmware)
# live in the same heap here; the metering loop's own heap is measured by make bench.
HEAP = "256k"


@pytest.fixture(scope="module")
def device_dirs(tmp_path_factory):
    return compiled_tree(str(tmp_path_factory.mktemp("mpy")))


def parse_pairs(text, conv=int):
    return [tuple(conv(x) for x in pair.split(":")) for pair in text.split(",")]


class Run:
    def __init__(self):
        self.boot = None  # restored totals
        self.m = []  # (sim_s, totals, truths)
        self.c = []  # totals at completed checkpoints
        self.cb = []  # totals being checkpointed (c-begin)
        self.last_line = None
        self.stopped = None
        self.logs = []


def run_once(device_dirs, state, start, mode, rng):
    """Boot the plug, cut its power per `mode`, return what it printed."""
    env = mp.env(device_dirs, {"POWERCUT": "%s %s %d %d" % (state, SPEED, CHECKPOINT_S, start)})
    proc = subprocess.Popen(mp.command(HEAP) + ["-c", "import powercut_plug"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    kill_at = t0 + rng.uniform(0.1, 0.9)
    kill_on_ckpt = rng.randint(1, 3) if mode == "mid" else None
    delay = rng.uniform(0.0, 0.014)  # into the checkpoint's ~12 ms of flash writes
    out = b""
    begins = 0
    fd = proc.stdout.fileno()
    sent = False
    while True:
        wait = max(0.0, kill_at - time.monotonic()) if mode != "mid" else 0.2
        r, _, _ = select.select([fd], [], [], min(wait, 0.2))
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
            if kill_on_ckpt and not sent:
                begins += chunk.count(b"c-begin ")
                if begins >= kill_on_ckpt:
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    sent = True
        if not sent and (time.monotonic() >= kill_at or time.monotonic() - t0 > 6):
            proc.send_signal(signal.SIGINT if mode == "clean" else signal.SIGKILL)
            sent = True
    proc.wait()
    wall = time.monotonic() - t0
    err = proc.stderr.read().decode()
    assert "Traceback" not in err + out.decode(), (err + out.decode())[-3000:]
    run = Run()
    for line in out.decode().split("\n")[:-1]:  # a line cut by the kill is dropped
        parts = line.split()
        if not parts:
            continue
        run.last_line = parts[0]
        if parts[0] == "boot":
            run.boot = parse_pairs(parts[2])
        elif parts[0] == "m":
            run.m.append((float(parts[1]), parse_pairs(parts[2]), parse_pairs(parts[3], float)))
        elif parts[0] == "c":
            run.c.append(parse_pairs(parts[2]))
        elif parts[0] == "stopped":
            run.stopped = parse_pairs(parts[1])
        elif parts[0] == "c-begin":
            run.cb.append(parse_pairs(parts[1]))
        elif parts[0] in ("w", "r"):
            pass
        elif parts[0] == "log":
            run.logs.append(line)
    return run, wall


def test_power_cuts_never_lose_more_than_one_checkpoint(device_dirs, tmp_path):
    rng = random.Random(20240611)
    state = str(tmp_path / "flash")
    modes = ["time"] * RUNS
    for i in rng.sample(range(1, RUNS - 1), 12):
        modes[i] = "mid"
    modes[RUNS // 2] = "clean"
    start = START
    prev = None  # the previous Run
    mid_kills = torn_tmp = boot_cuts = 0
    worst_loss_s = 0.0
    loss_s = []  # per cut, in seconds of M1/A's load
    lost_total = metered_total = 0
    for i, mode in enumerate(modes):
        if os.path.exists(os.path.join(state, "ledger.tmp")):
            torn_tmp += 1  # a checkpoint was cut before its rename
        run, wall = run_once(device_dirs, state, start, mode, rng)
        start += int(wall * SPEED) + 1
        if run.boot is None:  # cut while booting, before the ledger was restored
            boot_cuts += 1
            continue
        if prev is None:
            assert all(p == (0, 0) for p in run.boot)
        else:
            ref = prev.boot
            # the read in flight: normally 1 sim s; longer if the host stalled the process
            gaps = [b[0] - a[0] for a, b in zip(prev.m, prev.m[1:])]
            slack = max([2.0] + [g + 1 for g in gaps])
            for k in range(len(ref)):
                for d in (0, 1):
                    # never decrease; a completed checkpoint is never lost
                    assert run.boot[k][d] >= ref[k][d], (i, k, d)
                    if prev.c:
                        assert run.boot[k][d] >= prev.c[-1][k][d], (i, k, d, "lost a checkpoint")
                    if prev.m:
                        last = prev.m[-1][1][k][d]
                        if prev.cb:  # a checkpoint inside the last read, before its "m"
                            last = max(last, prev.cb[-1][k][d])
                        # never invents energy: the restored total was metered before
                        assert run.boot[k][d] <= last, (i, k, d)
                        # loses at most one checkpoint interval (+ the read in flight)
                        rate = prev.m[-1][2][k][d] / max(prev.m[-1][0], 1e-9)  # uWh per sim s
                        loss = last - run.boot[k][d]
                        assert loss <= rate * (CHECKPOINT_S + slack) + 1, (i, k, d, loss, rate)
                        if rate:
                            worst_loss_s = max(worst_loss_s, loss / rate)
                            if k == 0 and d == 0:
                                loss_s.append(loss / rate)
                        lost_total += loss
                    else:
                        assert run.boot[k][d] == ref[k][d]
            if prev.stopped is not None:
                assert run.boot == prev.stopped, "a clean stop lost energy"
        if run.last_line in ("c-begin", "w", "r"):
            mid_kills += 1
        # within the run: monotone and never above the truth
        before = run.boot
        for _sim_s, tot, truth in run.m:
            for k in range(len(tot)):
                for d in (0, 1):
                    assert tot[k][d] >= before[k][d], (i, "went backwards")
                    assert tot[k][d] - run.boot[k][d] <= truth[k][d] + 1, (i, k, d, "above truth")
            before = tot
        if run.m:
            for k in range(len(run.boot)):
                for d in (0, 1):
                    metered_total += run.m[-1][1][k][d] - run.boot[k][d]
        prev = run
    assert mid_kills >= 3, "only %d kills landed inside a checkpoint" % mid_kills
    print("\n%d power cuts (%d while booting, %d inside a checkpoint write, %d left a torn "
          "ledger.tmp); "
          "worst loss %.1f sim s of load, mean %.1f s (checkpoint every %d s); lost %.1f%% of "
          "the energy metered in these short runs"
          % (RUNS, boot_cuts, mid_kills, torn_tmp, worst_loss_s,
             sum(loss_s) / max(len(loss_s), 1), CHECKPOINT_S,
             100.0 * lost_total / max(metered_total, 1)))


EXACT = """
from simplug import SimPlug
p = SimPlug(%r, speed=0, log=lambda m: None)
if %r:
    for chip in p.chips.values():
        for c in chip.channels:
            c.p_offset = 0.0
p.ledger.restore()
p.meter.read_once()  # the drivers set the chips up at the instant they powered on
p.clock.advance(1.05)  # the host stalls the plug: 21 ms at 50x
p.meter.read_once()
p.clock.advance(5)  # and again after the read, before anyone looks
for key in p.meter.keys():
    dev, ch = key.split("/")
    chip = p.chips[dev]
    i = p.meter.front_end(dev).channel_codes.index(ch)
    print(key, p.ledger.totals(key), chip.handed_out_uwh(i), chip.true_energy_at_read_uwh(i),
          chip.true_energy_uwh(i))
"""


def _exact_run(device_dirs, state, creep_free):
    out = mp.run(code=EXACT % (state, creep_free), heap=HEAP, path_dirs=device_dirs)
    rows = {}
    for line in out.split("\n"):
        if line.startswith("M"):
            key, rest = line.split(" ", 1)
            rows[key] = ast.literal_eval(rest.replace(") (", "), ("))  # 4 (imp, exp) pairs
    return rows


def test_the_plug_meters_what_its_chips_hand_out_and_nothing_more(device_dirs, tmp_path):
    """Issue 10's failure, `(3, 0, 0, 'above truth') 335427 <= 335416.7 + 1`, made
    deterministic: a boot whose drivers set the chips up at the instant they powered on
    (nothing dropped at init), then a read 1.05 sim s later. The plug meters exactly what
    the chip's energy register handed out (to the LSB's rounding); that is more than the
    load drew because the simulated ADE7953 sees a +0.0412 W power offset on M1/A (creep,
    as a real uncalibrated chip does), not because the plug invented energy. Without the
    creep, metered energy never exceeds the delivered energy sampled at the read."""
    rows = _exact_run(device_dirs, str(tmp_path / "creep"), False)
    for key, (metered, handed, _at_read, _now) in rows.items():
        for d in (0, 1):
            assert int(handed[d] + 1e-6) == metered[d], (key, d, metered, handed)
    metered, handed, at_read, now = rows["M1/A"]
    assert metered[0] == 335427 and abs(at_read[0] - 335416.7) < 0.1, rows["M1/A"]
    assert metered[0] > at_read[0] + 1  # the old truth: the creep shows above it
    assert now[0] > at_read[0] + 1e6  # sampled later, the truth would hide anything
    rows = _exact_run(device_dirs, str(tmp_path / "exact"), True)
    for key, (metered, handed, at_read, _now) in rows.items():
        for d in (0, 1):
            assert metered[d] <= handed[d] + 1e-6 <= at_read[d] + 1, (key, d, rows[key])
            assert at_read[d] - metered[d] < 3125, (key, d, rows[key])  # < 1 LSB held back


STALL = """
from simplug import SimPlug
log = []
p = SimPlug(%r, speed=0, log=log.append)
for chip in p.chips.values():
    for c in chip.channels:
        c.p_offset = 0.0
p.ledger.restore()
p.meter.read_once()
p.clock.advance(1200)  # the loop held up for 20 minutes (no watchdog to reset it)
p.meter.read_once()
for key in p.meter.keys():
    dev, ch = key.split("/")
    i = p.meter.front_end(dev).channel_codes.index(ch)
    print(key, p.ledger.totals(key), p.chips[dev].true_energy_at_read_uwh(i))
print("late", p.meter.late_reads, [m for m in log if "late" in m or "after the last" in m])
"""


def test_a_read_later_than_its_registers_hold_invents_nothing(device_dirs, tmp_path):
    """M1/A (1150 W) read 1200 s after the last read: its ADE7953's signed 24-bit energy
    accumulator passed 2^23 LSB (1107 s at this load) and wrapped to a large negative
    count, which reads as 324 Wh of export that never flowed. The meter credits no energy
    against the direction of the channel's measured power in a read later than its chip's
    registers hold (or resumed after a reboot): lost, logged, never invented."""
    out = mp.run(code=STALL % str(tmp_path / "stall"), heap=HEAP, path_dirs=device_dirs)
    rows = {}
    for line in out.split("\n"):
        if line.startswith("M"):
            key, rest = line.split(" ", 1)
            rows[key] = ast.literal_eval(rest.replace(") (", "), ("))
    assert "late 2" in out, out  # both chips were read late
    for key, (metered, at_read) in rows.items():
        for d in (0, 1):
            assert metered[d] <= at_read[d] + 1, (key, d, metered, at_read)
    assert rows["M1/A"][0] == (0, 0), rows["M1/A"]  # the wrapped read is not credited
    metered, at_read = rows["M1/B"]  # 368 W: 1200 s fit its register, all of it counts
    assert at_read[0] - 50 <= metered[0] <= at_read[0], rows["M1/B"]
