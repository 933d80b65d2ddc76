# lib/esp32_board.py: board settings, the factory config overlay and the polarity wrapper
# (runs under CPython and MicroPython; see tests/dual.py). The hardware calls (watchdog,
# reset cause, Wi-Fi) are tested against the fake ESP32 modules in tests/test_boards.py.
from dual import raises
from esp32_board import BoardError, Inverted, factory, option, settings


class Reading:
    def __init__(self, code, power, imp, exp):
        self.channel_code = code
        self.power = power
        self.pf = 1.0 if power >= 0 else -1.0
        self.import_uwh = imp
        self.export_uwh = exp


class FakeFrontEnd:
    device_code = "M1"
    channel_codes = ("A", "B")
    max_current = 16.0

    def __init__(self):
        self.readings = [Reading("A", -100.0, 0, 28), Reading("B", 50.0, 14, 0)]
        self.cal = {"A": {"v_gain": 1.0}, "B": {"v_gain": 1.0}}

    def read(self):
        self.readings[0].power = -100.0
        self.readings[0].pf = -1.0
        self.readings[0].import_uwh, self.readings[0].export_uwh = 0, 28
        return self.readings

    def calibration(self):
        return self.cal

    def load_calibration(self, cal):
        self.cal.update(cal)

    def version(self):
        return 0x80


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _remove(path):
    import os

    try:
        os.remove(path)
    except OSError:
        pass


def test_inverted_channel_reads_a_load_as_import():
    fe = FakeFrontEnd()
    inv = Inverted(fe, ("A",))
    assert inv.device_code == "M1" and inv.channel_codes == ("A", "B")
    assert inv.max_current == 16.0
    for _ in range(2):  # the readings are reused: flipping must not accumulate
        a, b = inv.read()
        assert a.power == 100.0 and a.pf == 1.0 and a.import_uwh == 28 and a.export_uwh == 0
        assert b.power == 50.0 and b.import_uwh == 14  # not listed: untouched


def test_inverted_passes_calibration_and_driver_extras_through():
    fe = FakeFrontEnd()
    inv = Inverted(fe, ("B",))
    inv.load_calibration({"B": {"v_gain": 1.02}})
    assert inv.calibration()["B"] == {"v_gain": 1.02}
    assert inv.version() == 0x80


def test_inverting_a_channel_the_front_end_lacks_is_refused():
    e = raises(BoardError, Inverted, FakeFrontEnd(), ("C",))
    assert "cannot invert M1/C: no such channel (channels: A, B)" in str(e)


def test_settings_absent_file_is_empty_and_a_broken_one_is_refused():
    path = "_test_board_settings.json"
    _remove(path)
    assert settings(path) == {}
    try:
        _write(path, '{"line_freq": 60}')
        assert settings(path) == {"line_freq": 60}
        _write(path, '{"line_freq": 60')
        e = raises(BoardError, settings, path)
        assert "is not valid JSON" in str(e) and "fix or delete it" in str(e)
        _write(path, "[1, 2]")
        assert "must hold a JSON object" in str(raises(BoardError, settings, path))
    finally:
        _remove(path)


def test_option_checks_choices_and_ranges():
    s = {"line_freq": 60, "rate": 5000, "flag": True, "text": "x"}
    assert option(s, "line_freq", 50, allowed=(50, 60)) == 60
    assert option(s, "missing", 50, allowed=(50, 60)) == 50
    assert option(s, "rate", 2000, lo=320, hi=10000) == 5000
    e = raises(BoardError, option, s, "rate", 2000, lo=320, hi=4000)
    assert "'rate' is 5000; must be 320..4000" in str(e)
    assert "must be a number" in str(raises(BoardError, option, s, "flag", 1, lo=0, hi=2))
    assert "must be a number" in str(raises(BoardError, option, s, "text", 1, lo=0, hi=2))


def test_factory_overlays_board_json_on_the_board_defaults():
    base = {"meter": {"nominal_voltage_v": 230}, "channels": {"M1/A": {"name": "output 1"}}}
    s = {"factory": {"meter": {"checkpoint_s": 120}, "wifi": {"ssid": "home"}}}
    got = factory(s, base)
    assert got["meter"] == {"nominal_voltage_v": 230, "checkpoint_s": 120}
    assert got["wifi"] == {"ssid": "home"} and got["channels"] == base["channels"]
    assert base["meter"] == {"nominal_voltage_v": 230}  # defaults are not modified
    e = raises(BoardError, factory, {"factory": [1]}, base)
    assert "'factory' must be an object" in str(e)
