"""The real ESP32 board files, run unchanged on the MicroPython unix port.

tests/fakehw/ stands in for the ESP32's `machine`, `network` and `ntptime` modules and
routes SPI, I2C and ADC traffic to the register-level chip simulators of boards/sim/, as
the PCB would: a chip answers only on the pins and in the SPI mode it is wired for. So a
board file that names a wrong pin, bus or mode reads a floating bus and fails here as it
would on the plug. The simulated chips share the interpreter with the board here, so
these runs get a 256 KB heap (x64 objects are twice the ESP32's size).
"""

import ast
import json
import os
import subprocess
import time

import pytest

from tools import mp
from tools.paths import BOARDS, FIRMWARE, LIB, executable

TESTS = os.path.dirname(os.path.abspath(__file__))
FAKEHW = os.path.join(TESTS, "fakehw")
HEAP = "256k"
# the whole app compiled from source needs ~500 KB on the x64 port; its memory is
# measured as .mpy and frozen elsewhere (make bench, test_alloc_bound)
APP_HEAP = "1m"
BOARD_FILES = ("board_shelly_ade7953", "board_circuitsetup_6ch", "board_esp32_ct_adc")
UNIX_2000 = 946684800


def run(tmp_path, code, settings=None, heap=HEAP):
    """Run `code` on the unix port with the fake ESP32 modules first on the path and the
    plug's flash (board.json) in tmp_path; returns the last printed line as a literal."""
    if settings is not None:
        (tmp_path / "board.json").write_text(json.dumps(settings))
    out = mp.run(code, heap=heap, path_dirs=(FAKEHW, LIB, FIRMWARE, BOARDS), cwd=str(tmp_path),
                 timeout=120)
    lines = out.strip().splitlines()
    return ast.literal_eval(lines[-1])


# ---- every board module and its libraries compile for the ESP32 ----------------------

@pytest.mark.parametrize("arch", ["xtensawin", "x64"])
def test_board_modules_compile_with_mpy_cross(tmp_path, arch):
    srcs = [os.path.join(BOARDS, n + ".py") for n in BOARD_FILES]
    srcs += [os.path.join(LIB, "esp32_adc.py"), os.path.join(LIB, "esp32_board.py")]
    for src in srcs:
        out = tmp_path / (os.path.basename(src)[:-3] + ".mpy")
        r = subprocess.run([executable("mpy-cross"), "-march=" + arch, "-o", str(out), src],
                           capture_output=True, text=True)
        assert r.returncode == 0, "%s: %s" % (src, r.stderr)
        assert out.stat().st_size > 500


def test_board_modules_import_without_touching_hardware(tmp_path):
    # importing a board creates no Pin, bus, ADC or watchdog: that happens in front_ends()
    got = run(tmp_path, """
import machine
import board_shelly_ade7953, board_circuitsetup_6ch, board_esp32_ct_adc
h = machine.hw
print((len(h.pins), len(h.spis), len(h.i2cs), len(h.adcs), len(h.wdts),
       board_shelly_ade7953.NAME, board_circuitsetup_6ch.NAME, board_esp32_ct_adc.NAME))
""")
    assert got == (0, 0, 0, 0, 0, "shelly_ade7953", "circuitsetup_6ch", "esp32_ct_adc")


# ---- Shelly with ADE7953 -----------------------------------------------------------------

SHELLY_PRO = """
import machine
from sim.clock import SimClock
from sim.ade7953_sim import ADE7953Sim
from sim.load import Load, Mains
clk = SimClock(0, 0)
mains = Mains(230.0, 50.0)
# On the Pro 2PM both chips read a consuming load as negative power (the shunts are
# wired that way round): the simulated loads are reversed the same way.
c1 = ADE7953Sim(clk, [Load(5.0, export=True), Load(0.0)], mains, seed=3)
c2 = ADE7953Sim(clk, [Load(2.0, 0.8, "inductive", export=True), Load(0.0)], mains, seed=4)
machine.hw.spi_chip(c1, cs=0, sck=14, mosi=13, miso=12)
machine.hw.spi_chip(c2, cs=15, sck=14, mosi=13, miso=12)
sr = machine.hw.shift_register(latch=4, sck=14, mosi=13)
import board_shelly_ade7953 as board
fes = board.front_ends(board.clock())
def run(seconds):
    tot = {}
    for _ in range(seconds):
        clk.advance(1.0)
        for fe in fes:
            for r in fe.read():
                k = fe.device_code + "/" + r.channel_code
                t = tot.setdefault(k, [0, 0])
                t[0] += r.import_uwh
                t[1] += r.export_uwh
    return tot
"""


def _close(got, want, rel):
    return abs(got - want) <= rel * abs(want)


def test_shelly_pro2pm_meters_both_outputs_as_import(tmp_path):
    got = run(tmp_path, SHELLY_PRO + """
tot = run(60)
rs = [(fe.device_code, fe.channel_codes, r.voltage, r.current, r.power, r.pf, r.frequency)
      for fe in fes for r in fe.fe.readings]
true = [c1.true_energy_uwh(0), c2.true_energy_uwh(0)]
print((rs, tot, true, sr.outputs, machine.hw.level(2), machine.hw.spis[0].mode,
       machine.hw.spis[0].baudrate))
""")
    rs, tot, true, outputs, reset, mode, baud = got
    assert [(r[0], r[1]) for r in rs] == [("M1", ("A",)), ("M2", ("A",))]
    (_, _, v1, i1, p1, pf1, f1), (_, _, v2, i2, p2, pf2, f2) = rs
    # factory gain errors of a few percent per channel, uncalibrated: within 6 %
    assert _close(v1, 230, 0.06) and _close(v2, 230, 0.06)
    assert _close(i1, 5.0, 0.06) and _close(i2, 2.0, 0.06)
    assert _close(p1, 1150, 0.1) and _close(p2, 368, 0.1)
    assert p1 > 0 and p2 > 0 and pf1 > 0.95 and 0.7 < pf2 < 0.9
    assert f1 == pytest.approx(50, abs=0.1)
    # a load is import, never export; energy follows the true energy within the gain error
    assert tot["M1/A"][1] == 0 and tot["M2/A"][1] == 0
    assert _close(tot["M1/A"][0], true[0][1], 0.1)
    assert _close(tot["M2/A"][0], true[1][1], 0.1)
    # both chips out of reset, relays on and LEDs off through the 74HC595, SPI mode 3
    assert reset == 1 and outputs == 0x1F and mode == (1, 1) and baud == 1000000


def test_shelly_outputs_stay_as_they_are_when_configured_off(tmp_path):
    got = run(tmp_path, SHELLY_PRO + "print((sr.outputs, len(fes)))",
              settings={"outputs_on": False})
    assert got == (None, 2)


def test_shelly_chip_on_the_wrong_pins_is_reported_not_read_as_zero(tmp_path):
    # the second chip's select is on GPIO5 on this PCB, not where the board file says
    got = run(tmp_path, """
import machine
from sim.clock import SimClock
from sim.ade7953_sim import ADE7953Sim
from sim.load import Load
from frontend import FrontEndError
clk = SimClock(0, 0)
c1 = ADE7953Sim(clk, [Load(5.0, export=True), Load(0.0)], seed=3)
c2 = ADE7953Sim(clk, [Load(2.0, export=True), Load(0.0)], seed=4)
machine.hw.spi_chip(c1, cs=0, sck=14, mosi=13, miso=12)
machine.hw.spi_chip(c2, cs=5, sck=14, mosi=13, miso=12)
import board_shelly_ade7953 as board
fes = board.front_ends()
clk.advance(1)
out = [round(fes[0].read()[0].current, 1)]
try:
    fes[1].read()
    out.append("read")
except FrontEndError as e:
    out.append(str(e))
print(out)
""")
    assert got[0] == pytest.approx(5.0, rel=0.06)
    assert "M2" in got[1] and "no chip answering" in got[1]


def test_shelly_plus2pm_variant_reads_one_chip_over_i2c(tmp_path):
    got = run(tmp_path, """
import machine
from sim.clock import SimClock
from sim.ade7953_sim import ADE7953Sim
from sim.load import Load, Mains
clk = SimClock(0, 0)
chip = ADE7953Sim(clk, [Load(3.0, export=True), Load(1.0, export=True)], Mains(), seed=5)
machine.hw.i2c_chip(chip, scl=25, sda=26, address=0x38)
import board_shelly_ade7953 as board
fes = board.front_ends(board.clock())
imp = [0, 0]
exp = [0, 0]
for _ in range(30):
    clk.advance(1.0)
    for k, r in enumerate(fes[0].read()):
        imp[k] += r.import_uwh
        exp[k] += r.export_uwh
rs = fes[0].fe.readings
print(([(fe.device_code, fe.channel_codes) for fe in fes], [r.current for r in rs],
       [r.power for r in rs], imp, exp, machine.hw.level(13), machine.hw.level(12),
       machine.hw.i2cs[0].freq, sorted(board.factory_config()["channels"])))
""", settings={"variant": "plus2pm"})
    codes, amps, watts, imp, exp, relay1, relay2, freq, keys = got
    assert codes == [("M1", ("A", "B"))]
    assert amps[0] == pytest.approx(3.0, rel=0.06) and amps[1] == pytest.approx(1.0, rel=0.06)
    assert watts[0] > 600 and watts[1] > 200
    assert exp == [0, 0] and imp[0] > 2 * imp[1] > 0
    assert (relay1, relay2, freq) == (1, 1, 400000)
    assert keys == ["M1/A", "M1/B"]


@pytest.mark.parametrize("settings,expect", [
    ({"variant": "pro3em"}, "'variant' is 'pro3em'; allowed: 'pro2pm', 'plus2pm'"),
    ({"invert": ["M3/A"]}, "'invert' names 'M3/A'; channels: M1/A, M2/A"),
    ({"max_current_a": 500}, "'max_current_a' is 500; must be 0.1..100"),
])
def test_shelly_bad_board_settings_are_refused_with_the_reason(tmp_path, settings, expect):
    got = run(tmp_path, """
import board_shelly_ade7953 as board
from esp32_board import BoardError
try:
    board.front_ends()
    print("built")
except BoardError as e:
    print(repr(str(e)))
""", settings=settings)
    assert expect in got


def test_unreadable_board_json_stops_the_board_with_a_clear_message(tmp_path):
    (tmp_path / "board.json").write_text("{variant: pro2pm")
    got = run(tmp_path, """
import board_shelly_ade7953 as board
try:
    board.front_ends()
except ValueError as e:
    print(repr(str(e)))
""")
    assert got.startswith("board.json is not valid JSON") and "fix or delete it" in got


# ---- CircuitSetup 6 channel (two ATM90E32) -------------------------------------------

CIRCUITSETUP = """
import machine
from sim.clock import SimClock
from sim.atm90e32_sim import ATM90E32Sim
from sim.load import Load, Mains, pv_inverter
clk = SimClock(0, 0)
mains = Mains(230.0, 50.0)
# the board's Igain for its SCT-013-000 CTs (27518) is what the simulated hardware expects
def chip(loads, seed):
    return ATM90E32Sim(clk, loads, mains, seed=seed, ugain_nominal=7305, igain_nominal=27518)
chips = [chip([Load(10.0), Load(4.0, 0.9, "inductive"), Load(0.5)], 11),
         chip([pv_inverter(6.0), Load(20.0), Load(0.0)], 12)]
wire = [(5, chips[0]), (4, chips[1])]
for extra in EXTRA:
    wire.append(extra)
for cs, c in wire:
    machine.hw.spi_chip(c, cs=cs, sck=18, mosi=23, miso=19)
import board_circuitsetup_6ch as board
fes = board.front_ends(board.clock())
def run(seconds):
    tot = {}
    last = {}
    for _ in range(seconds):
        clk.advance(1.0)
        for fe in fes:
            for r in fe.read():
                k = fe.device_code + "/" + r.channel_code
                t = tot.setdefault(k, [0, 0])
                t[0] += r.import_uwh
                t[1] += r.export_uwh
                last[k] = (round(r.voltage, 1), round(r.current, 2), round(r.power, 1))
    return tot, last
"""


def test_circuitsetup_main_board_meters_six_channels_under_two_device_codes(tmp_path):
    got = run(tmp_path, "EXTRA = []\n" + CIRCUITSETUP + """
tot, last = run(60)
print(([(fe.device_code, fe.channel_codes, fe.max_current) for fe in fes], tot, last,
       machine.hw.spis[0].pins, machine.hw.spis[0].mode, machine.hw.spis[0].baudrate,
       chips[0].regs[0x33], chips[0].regs[0x62], chips[1].regs[0x61]))
""")
    codes, tot, last, pins, mode, baud, mmode0, igain, ugain = got
    assert codes == [("M1", ("1", "2", "3"), 100.0), ("M2", ("4", "5", "6"), 100.0)]
    assert (pins, mode, baud) == ((18, 23, 19), (1, 1), 200000)
    assert mmode0 & 0x1000 == 0  # 50 Hz by default
    assert (igain, ugain) == (27518, 7305)
    expect_a = {"M1/1": 10.0, "M1/2": 4.0, "M1/3": 0.5, "M2/4": 6.0, "M2/5": 20.0}
    for key, amps in expect_a.items():
        v, a, w = last[key]
        assert _close(v, 230, 0.06), (key, last[key])
        assert _close(a, amps, 0.06), (key, last[key])
    assert last["M2/6"][1] < 0.05
    # the PV inverter exports, everything else imports; 20 A for 60 s is about 77 Wh
    assert last["M2/4"][2] < 0 and tot["M2/4"][0] == 0 and tot["M2/4"][1] > 0
    for key in ("M1/1", "M1/2", "M1/3", "M2/5"):
        assert tot[key][0] > 0 and tot[key][1] == 0, key
    assert _close(tot["M2/5"][0], 20 * 230 * 60 / 3600 * 1e6, 0.08)


def test_circuitsetup_60hz_add_on_board_and_ct_type_from_board_json(tmp_path):
    extra = """EXTRA = []
from sim.load import Load as _L
"""
    got = run(tmp_path, extra + CIRCUITSETUP.replace(
        "for extra in EXTRA:",
        "a1 = chip([Load(1.0)], 21)\na2 = chip([Load(2.0)], 22)\n"
        "EXTRA = [(0, a1), (16, a2)]\nfor extra in EXTRA:").replace(
        "igain_nominal=27518", "igain_nominal=8650") + """
tot, last = run(5)
print(([(fe.device_code, fe.channel_codes, fe.max_current) for fe in fes],
       last["M3/7"], last["M4/10"], a1.regs[0x33] & 0x1000, a1.regs[0x62],
       sorted(board.factory_config()["channels"])[-1]))
""", settings={"line_freq": 60, "addons": 1, "ct": "SCT-013-030"})
    codes, m3, m4, hz60, igain, last_key = got
    assert codes[2:] == [("M3", ("7", "8", "9"), 30.0), ("M4", ("10", "11", "12"), 30.0)]
    assert _close(m3[1], 1.0, 0.06) and _close(m4[1], 2.0, 0.06)
    assert hz60 == 0x1000 and igain == 8650 and last_key == "M4/12"


@pytest.mark.parametrize("settings,expect", [
    ({"ct": "SCT-999"}, "'ct' 'SCT-999' unknown; known: SCT-006"),
    ({"current_cal": [27518, 27518]}, "'current_cal' lists 2 values for 6 channels"),
    ({"line_freq": 55}, "'line_freq' is 55; allowed: 50, 60"),
    ({"addons": 7}, "'addons' is 7; must be 0..6"),
])
def test_circuitsetup_bad_settings_are_refused(tmp_path, settings, expect):
    got = run(tmp_path, """
import board_circuitsetup_6ch as board
from esp32_board import BoardError
try:
    board.front_ends()
    print("built")
except BoardError as e:
    print(repr(str(e)))
""", settings=settings)
    assert expect in got


# ---- ESP32 ADC1 with CT clamps ------------------------------------------------------------

CT_ADC = """
import machine
from sim.clock import SimClock
from sim.load import Load, Mains
from sim.waveform_src import WaveformSource
import board_esp32_ct_adc as board
clk = SimClock(0, 0)
mains = Mains(230.0, 50.0, ((3, 0.03, 0.0),))
# the documented default hardware: 0.194 V per count on the voltage input, SCT-013-030
# clamps (30 A/V) on an ADC of 3.3 V / 4095 per count; a quarter-period conversion delay
def src(load, seed):
    return WaveformSource(clk, load, mains, sample_rate=2000, bits=12,
                          v_counts_per_volt=1 / board.V_PER_COUNT,
                          i_counts_per_amp=1 / board.I_PER_COUNT, pair_delay=0.25,
                          seed=seed, gain_spread=0.02)
srcs = {35: src(Load(10.0), 1), 36: src(Load(3.0, 0.8, "inductive"), 2),
        39: src(Load(4.0, export=True), 3)}
machine.hw.adc_waveform(clk, 34, srcs)
fes = board.front_ends(clk)
tot = {}
for _ in range(4):
    clk.advance(1.0)
    for fe in fes:
        for r in fe.read():
            t = tot.setdefault(r.channel_code, [0, 0])
            t[0] += r.import_uwh
            t[1] += r.export_uwh
g = fes[0]
print(([(fe.device_code, fe.channel_codes) for fe in fes],
       [(r.voltage, r.current, r.power, r.pf, r.frequency) for r in g.readings], tot,
       sorted(set((a.pin, a._atten) for a in machine.hw.adcs)), g.late()))
"""


def test_esp32_adc_board_meters_each_ct_against_the_shared_voltage(tmp_path):
    got = run(tmp_path, CT_ADC, settings={"pair_delay": 0.25})
    codes, rs, tot, adcs, late = got
    assert codes == [("W1", ("1", "2", "3"))]
    assert adcs == [(34, 3), (35, 3), (36, 3), (39, 3)]  # ADC1 pins at 11 dB
    want = [(10.0, 2300.0, 1.0), (3.0, 552.0, 0.8), (4.0, -920.0, -1.0)]
    for (v, a, w, pf, hz), (amps, watts, pfw) in zip(rs, want):
        assert _close(v, 230, 0.04), rs
        assert _close(a, amps, 0.04), rs
        assert _close(w, watts, 0.06), rs
        assert pf == pytest.approx(pfw, abs=0.05), rs
        assert hz == pytest.approx(50, abs=0.5)
    # 3 s of energy between the four reads: 10 A resistive about 1.9 Wh, the third exports
    assert _close(tot["1"][0], 2300 * 3 / 3600 * 1e6, 0.06) and tot["1"][1] == 0
    assert tot["3"][0] == 0 and tot["3"][1] > 0
    assert len(late) == 3


def test_esp32_adc_board_calibration_is_per_channel_and_all_or_nothing(tmp_path):
    got = run(tmp_path, CT_ADC.replace("print((", "print(('x', ") + """
before = g.calibration()
g.load_calibration({"2": {"i_gain": 1.05}})
after = g.calibration()
try:
    g.load_calibration({"1": {"i_gain": 1.1}, "3": {"v_gain": 9.0}})
    bad = "accepted"
except ValueError as e:
    bad = str(e)
try:
    g.load_calibration({"9": {"i_gain": 1.0}})
    unknown = "accepted"
except ValueError as e:
    unknown = str(e)
print((sorted(before), after["2"]["i_gain"], g.calibration()["1"]["i_gain"], bad, unknown))
""", settings={"pair_delay": 0.25})
    keys, gain2, gain1, bad, unknown = got
    assert keys == ["1", "2", "3"] and gain2 == 1.05
    assert gain1 == 1.0 and "v_gain 9.0000 of W1/3 outside" in bad
    assert "W1 has no channel '9'" in unknown


@pytest.mark.parametrize("settings,expect", [
    ({"ct_pins": [25]}, "GPIO25 is on ADC2, which the Wi-Fi radio blocks"),
    ({"ct_pins": [34]}, "voltage and CT pins must all differ"),
    ({"v_pin": 5}, "GPIO5 has no ADC"),
    ({"i_per_count": [0.02]}, "'i_per_count' lists 1 values for 3 CTs"),
    ({"sample_rate": 100}, "'sample_rate' is 100; must be 320..10000"),
])
def test_esp32_adc_board_refuses_pins_and_rates_that_cannot_work(tmp_path, settings, expect):
    got = run(tmp_path, """
import board_esp32_ct_adc as board
from esp32_board import BoardError
try:
    board.front_ends()
    print("built")
except BoardError as e:
    print(repr(str(e)))
""", settings=settings)
    assert expect in got


# ---- what every real board shares: clock, watchdog, reset cause, Wi-Fi, factory config ----

@pytest.mark.parametrize("name", BOARD_FILES)
def test_watchdog_and_reset_cause(tmp_path, name):
    got = run(tmp_path, """
import machine
import %s as board
from esp32_board import BoardError
w = board.watchdog(30000)
w.feed()
causes = []
for c in (machine.PWRON_RESET, machine.WDT_RESET, machine.HARD_RESET, machine.SOFT_RESET,
          machine.DEEPSLEEP_RESET):
    machine.hw.reset_cause = c
    causes.append(board.watchdog_reset())
try:
    board.watchdog(10)
    short = "started"
except BoardError as e:
    short = str(e)
print((machine.hw.wdts[0].timeout, machine.hw.wdts[0].feeds, causes, short,
       len(machine.hw.wdts)))
""" % name)
    timeout, feeds, causes, short, count = got
    assert (timeout, feeds, count) == (30000, 1, 1)
    # power-on, soft reset and deep-sleep wake are not crashes; watchdog and panic are
    assert causes == [False, True, True, False, False]
    assert "watchdog timeout 10 ms outside" in short


@pytest.mark.parametrize("name", BOARD_FILES)
def test_clock_is_the_system_clock_in_plug_seconds(tmp_path, name):
    got = run(tmp_path, "import %s as b\nc = b.clock()\nprint((type(c).__name__, c.time()))"
              % name)
    assert got[0] == "SystemClock"
    assert abs(got[1] - (time.time() - UNIX_2000)) < 5


@pytest.mark.parametrize("name", BOARD_FILES)
def test_factory_config_is_a_valid_config_with_the_boards_channels(tmp_path, name):
    got = run(tmp_path, """
import %s as board
from plug.config import validate
cfg = validate(board.factory_config())
print((sorted(cfg["channels"]), cfg["wifi"], cfg["meter"]["nominal_voltage_v"],
       cfg["server"]["port"]))
""" % name, settings={"factory": {"wifi": {"ssid": "home", "password": "pw"},
                                  "server": {"port": 8080}}})
    keys, wifi, volts, port = got
    want = {"board_shelly_ade7953": ["M1/A", "M2/A"],
            "board_circuitsetup_6ch": ["M1/1", "M1/2", "M1/3", "M2/4", "M2/5", "M2/6"],
            "board_esp32_ct_adc": ["W1/1", "W1/2", "W1/3"]}[name]
    assert keys == want
    assert wifi == {"ssid": "home", "password": "pw"} and volts == 230 and port == 8080


NET = """
import network, ntptime
import esp32_board
lines = []
"""


def test_network_up_connects_and_sets_the_clock(tmp_path):
    got = run(tmp_path, NET + """
import board_circuitsetup_6ch as board
ok = board.network_up({"ssid": "home", "password": "secret"})
again = esp32_board.network_up({"ssid": "home", "password": "secret"}, log=lines.append)
print((ok, again, ntptime.calls, [e[0] for e in network.log], lines))
""")
    ok, again, ntp_calls, log, lines = got
    assert ok is True and again is True and ntp_calls == 2
    assert log == ["active", "connect", "active"]  # already up: no second connect
    assert lines == ["[board] Wi-Fi 'home' up, address 192.168.1.77"]


def test_network_up_gives_up_after_its_timeout_on_a_wrong_password(tmp_path):
    got = run(tmp_path, NET + """
import time
t0 = time.ticks_ms()
ok = esp32_board.network_up({"ssid": "home", "password": "wrong"}, timeout_ms=300,
                            log=lines.append)
took = time.ticks_diff(time.ticks_ms(), t0)
print((ok, took, [e[0] for e in network.log], ntptime.calls, lines))
""")
    ok, took, log, ntp_calls, lines = got
    assert ok is False and 300 <= took < 2000 and ntp_calls == 0
    assert log[-1] == "disconnect"
    assert "not connected after 300 ms (status 202): out of range or wrong password?" in lines[0]


def test_network_up_without_ssid_stays_offline_and_ntp_failure_is_not_fatal(tmp_path):
    got = run(tmp_path, NET + """
off = esp32_board.network_up({"ssid": "", "password": ""}, log=lines.append)
touched = list(network.log)
ntptime.fail = True
on = esp32_board.network_up({"ssid": "home", "password": "secret"}, log=lines.append)
print((off, touched, on, lines))
""")
    off, touched, on, lines = got
    assert off is False and touched == [] and on is True
    assert "no Wi-Fi configured" in lines[0]
    assert lines[-1].startswith("[board] NTP: clock not set")


# ---- the app boots on a real board file ------------------------------------------------

def test_app_boots_and_meters_on_the_circuitsetup_board(tmp_path):
    """The firmware's Plug, built on a real board file and the fake ESP32 hardware, meters
    every channel of both chips into its ledger and reports them in its status."""
    got = run(tmp_path, "EXTRA = []\n" + CIRCUITSETUP.replace(
        "fes = board.front_ends(board.clock())", "") + """
from plug.app import Plug
board.clock = lambda: clk  # the app's time is the simulated world's time here
plug = Plug(board, state="state")
for _ in range(5):
    clk.advance(1.0)
    plug.meter.read_once()
st = plug.status()
print((st["device"]["board"], sorted(st["channels"]), st["faulty"],
       round(st["channels"]["M2/5"]["A"], 1), st["channels"]["M2/5"]["import_uwh"] > 0,
       len(machine.hw.wdts)))
""", heap=APP_HEAP)
    board, keys, faulty, amps, counted, wdts = got
    assert board == "circuitsetup_6ch"
    assert keys == ["M1/1", "M1/2", "M1/3", "M2/4", "M2/5", "M2/6"]
    assert faulty == {} and amps == pytest.approx(20, rel=0.06) and counted
    assert wdts == 0  # the watchdog starts with the app's tasks, not at boot


def test_shelly_relays_drive_each_output_alone(tmp_path):
    # issue 13: Pro 2PM outputs through the 74HC595 (QA relay 1, QB relay 2, LEDs kept
    # off), Plus 2PM through GPIO13/GPIO12; CircuitSetup has none (measurement only)
    got = run(tmp_path, SHELLY_PRO + """
rel = board.relays()
rel["M1/A"](False)
a = sr.outputs
rel["M2/A"](False)
b = sr.outputs
rel["M1/A"](True)
c = sr.outputs
board.led("on")
print((sorted(rel), a, b, c, sr.outputs, [fe.full_scale_a for fe in fes]))
""")
    # LEDs inverted on QC-QE: "on" lights the green one (QD) only
    assert got == (["M1/A", "M2/A"], 0x1E, 0x1C, 0x1D, 0x15, [90.0, 90.0])
    got = run(tmp_path, """
import machine
from sim.clock import SimClock
from sim.ade7953_sim import ADE7953Sim
from sim.load import Load
chip = ADE7953Sim(SimClock(0, 0), [Load(1.0), Load(1.0)], seed=5)
machine.hw.i2c_chip(chip, scl=25, sda=26, address=0x38)
import board_shelly_ade7953 as board
import board_circuitsetup_6ch
fes = board.front_ends()
rel = board.relays()
rel["M1/B"](False)
board.led("on")
led = [machine.hw.level(0)]
board.led("alert")
led.append(machine.hw.level(0))
board.led("alert")
led.append(machine.hw.level(0))
print((sorted(rel), machine.hw.level(13), machine.hw.level(12),
       board_circuitsetup_6ch.relays(), sorted(board.buttons()), led))
""", settings={"variant": "plus2pm"})
    assert got == (["M1/A", "M1/B"], 1, 0, {}, ["M1/A", "M1/B"], [0, 1, 0])


def test_shelly_pro_reads_its_ntcs_and_switch_inputs(tmp_path):
    # issue 13: the default board's over-temperature cut-off and buttons need its sensors:
    # NTCs on GPIO36/37 and switch inputs on GPIO38/39 (ESPHome's Shelly Pro 2 PM page)
    got = run(tmp_path, SHELLY_PRO + """
import math
def volts(c):  # the divider's output for a 10 kOhm B3350 NTC at c degrees
    r = 10000 * math.exp(3350 * (1 / (c + 273.15) - 1 / 298.15))
    return 3.3 * r / (10000 + r)
machine.hw.volts.update({36: volts(25), 37: volts(95)})
t = [board.temperature()]
machine.hw.volts[37] = 3.3  # an open NTC is no reading; the other one still counts
t.append(board.temperature())
machine.hw.volts[36] = 0.0
t.append(board.temperature())
sw = board.buttons()
before = (sw["M1/A"](), sw["M2/A"]())
machine.hw.drive(39, 1)
print(([None if x is None else round(x, 1) for x in t], sorted(sw), before,
       (sw["M1/A"](), sw["M2/A"]())))
""")
    assert got == ([95.0, 25.0, None], ["M1/A", "M2/A"], (0, 0), (0, 1))
