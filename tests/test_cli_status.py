"""`plugctl status` shows the tariff in force and never prints "None"."""

from tools.client import status_text

PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def plug_status(provider, balance=None, accrued=None):
    """A /status body shaped as firmware/plug/app.py's Plug.status() returns it."""
    return {
        "device": {"board": "sim", "time": 849041393, "uptime_s": 41, "free_heap": 394752,
                   "config_version": 1, "config_error": None, "owner": None,
                   "safe_mode": False, "last_error": None, "late_reads": 0},
        "channels": {"M1/A": {"name": "", "V": 226.8, "A": 8.19, "W": 1849.6, "PF": 1.0,
                              "Hz": 50.0, "import_uwh": 2758794000, "export_uwh": 0,
                              "import_wh": 2758, "export_wh": 0, "unbilled_uwh": 0,
                              "fault": False}},
        "faulty": {},
        "wallets": [{"account": 0, "address": "0x9EC39F476D17c67d78536aeFDDBb1a441Cf52024",
                     "channels": ["M1/A"], "balance": balance}],
        "provider": provider,
        "payments": {"accrued": accrued or {}, "pending": [], "confirmed": [], "failed": []},
    }


def test_status_shows_the_rate_in_force_in_currency_units():
    prov = {"provider": "Example Energy", "name": "Example Energy", "payee": PAYEE,
            "token": None, "currency": "ETH", "decimals": 18,
            "rate_per_kwh": 10**15, "intervals": 1, "reports": []}
    text = status_text(plug_status(prov, {"native": 10 * 10**18}, {"0/0": 5}))
    line = text.splitlines()[1]
    assert line == ("provider Example Energy  payee %s  rate 0.001 ETH/kWh "
                    "(1000000000000000 base units)" % PAYEE)
    assert "balance native 10000000000000000000" in text
    assert "accrued 0/0 5" in text
    assert "None" not in text and "{" not in text


def test_status_before_any_tariff_says_none_yet_and_why():
    prov = {"provider": None, "name": None, "payee": None, "token": None, "currency": None,
            "decimals": None, "rate_per_kwh": None, "intervals": 0,
            "reports": ["provider refused: descriptor: payee %s is not approved by the owner"
                        % PAYEE]}
    text = status_text(plug_status(prov))
    assert "provider none yet  payee none yet  rate none yet" in text
    assert "last report: provider refused: descriptor: payee" in text
    assert "balance unknown" in text and "accrued 0" in text
    assert "None" not in text


def test_status_from_a_plug_without_the_rate_fields():
    prov = {"provider": "Example Energy", "payee": PAYEE, "token": None, "intervals": 1,
            "reports": []}
    text = status_text(plug_status(prov, {"native": 0}))
    assert "provider Example Energy  payee %s  rate none yet" % PAYEE in text
    assert "None" not in text
