"""`plugctl status` shows the tariff in force, amounts in the currency's unit (base units
with --raw), every figure labelled, and never prints "None"."""

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
            "token": None, "currency": "native", "decimals": 18,
            "rate_per_kwh": 10**15, "intervals": 1, "reports": []}
    st = plug_status(prov, {"native": 9996115151577067360}, {"0/0": 445691426000000})
    text = status_text(st)
    line = text.splitlines()[1]
    assert line == "provider Example Energy  payee %s  rate 0.001 ETH/kWh" % PAYEE
    assert "balance 9.996115 ETH  pays for M1/A" in text
    assert "billed, not yet invoiced: 0.0004457 ETH (wallet 0)" in text
    assert "payments: 0 confirmed, 0 pending, 0 failed" in text
    assert "None" not in text and "{" not in text and "0/0" not in text
    raw = status_text(st, raw=True)
    assert "rate 1000000000000000 wei/kWh" in raw
    assert "balance 9996115151577067360 wei" in raw and "445691426000000 wei (wallet 0)" in raw


def test_status_in_a_token_with_its_symbol_and_decimals():
    tok = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    prov = {"provider": "Example Energy", "name": "Example Energy", "payee": PAYEE,
            "token": tok, "currency": "USDC", "decimals": 6, "rate_per_kwh": 245000,
            "intervals": 1, "reports": []}
    st = plug_status(prov, {"native": 10**18, "token": 12400000}, {"0/0": 1234})
    st["payments"]["failed"] = [{"id": "3-0", "state": "failed", "to": PAYEE, "amount": 2500000,
                                 "token": tok, "hash": "0x" + "ab" * 32, "nonce": 2,
                                 "error": "receipt status 0"}]
    text = status_text(st)
    assert "rate 0.245 USDC/kWh" in text
    assert "balance 1.00 ETH, 12.40 USDC" in text
    assert "billed, not yet invoiced: 0.001234 USDC (wallet 0)" in text
    assert ("  failed payment 3-0  2.50 USDC to %s  0x%s  error: receipt status 0"
            % (PAYEE, "ab" * 32)) in text
    assert "balance 1000000000000000000 wei, 12400000 USDC base units" in status_text(st, True)


def test_status_before_any_tariff_says_none_yet_and_why():
    prov = {"provider": None, "name": None, "payee": None, "token": None, "currency": None,
            "decimals": None, "rate_per_kwh": None, "intervals": 0,
            "reports": ["provider refused: descriptor: payee %s is not approved by the owner"
                        % PAYEE]}
    text = status_text(plug_status(prov))
    assert "provider none yet  payee none yet  rate none yet" in text
    assert "last report: provider refused: descriptor: payee" in text
    assert "balance unknown (not read from the chain yet)" in text
    assert "billed, not yet invoiced: nothing" in text
    assert "None" not in text


def test_status_from_a_plug_without_the_rate_fields():
    prov = {"provider": "Example Energy", "payee": PAYEE, "token": None, "intervals": 1,
            "reports": []}
    text = status_text(plug_status(prov, {"native": 0}))
    assert "provider Example Energy  payee %s  rate none yet" % PAYEE in text
    assert "None" not in text


def test_status_labels_outputs_runway_and_alerts():
    prov = {"provider": "Example Energy", "name": "Example Energy", "payee": PAYEE,
            "token": None, "currency": "native", "decimals": 18, "rate_per_kwh": 10**15,
            "intervals": 1, "reports": []}
    st = plug_status(prov, {"native": 10**18})
    st["device"]["temperature_c"] = 41.25
    st["outputs"] = {"M1/A": {"relay": True, "on": False, "want": True, "reason": "overheat"},
                     "M2/1": {"relay": False, "on": None, "reason": "measurement only"}}
    st["runway"] = [{"account": 0, "balance": 10**18, "spent_24h": 10**16,
                     "runway_s": 100 * 86400}]
    st["alerts"] = [{"kind": "wallet_cannot_pay", "account": 0, "invoice": "5-0",
                     "amount_due": 3 * 10**15, "since": None, "error": "balance too low",
                     "supply": "at_risk"}]
    text = status_text(st)
    assert "board temperature 41.2 C" in text
    assert "outputs: M1/A off (overheat)" in text and "M2/1" not in text.split("outputs:")[1]
    assert "lasts 100 days at the last 24 h's spend (0.01 ETH)" in text
    assert ("ALERT wallet 0 cannot pay invoice 5-0 (0.003 ETH): balance too low; "
            "supply at_risk") in text
    assert "None" not in text


def test_alert_error_texts_show_wei_in_the_currency_unit():
    """The plug's SpendRefused texts carry wei; not --raw they read in ETH (gwei per gas)."""
    prov = {"provider": "Example Energy", "name": "Example Energy", "payee": PAYEE,
            "token": None, "currency": "native", "decimals": 18, "rate_per_kwh": 10**15,
            "intervals": 1, "reports": []}
    st = plug_status(prov, {"native": 10**14})
    err = ("balance of 0x6B21b3ae41f818Fc91e322b53f8D0773d31eCB75 is 100000000000000 wei, "
           "needs 1538757013324000 (amount + gas + floor 0)")
    st["alerts"] = [{"kind": "wallet_cannot_pay", "account": 0, "invoice": "7-0",
                     "amount_due": 1538000000000000, "since": None, "error": err,
                     "supply": "at_risk"}]
    st["payments"]["failed"] = [{"id": "6-0", "amount": 10**15, "token": None, "to": PAYEE,
                                 "hash": None, "error": "fee 250000000000 wei/gas is over "
                                 "the configured cap 100000000000"}]
    text = status_text(st)
    assert ("balance of 0x6B21b3ae41f818Fc91e322b53f8D0773d31eCB75 is 0.0001 ETH, needs "
            "0.001539 ETH (amount + gas + floor 0 ETH)") in text
    assert "error: fee 250 gwei/gas is over the configured cap 100 gwei/gas" in text
    assert " wei" not in text
    assert err in status_text(st, raw=True)  # --raw: the plug's own words


def test_token_alert_error_text_in_the_token_unit():
    tok = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    prov = {"provider": "Example Energy", "name": "Example Energy", "payee": PAYEE,
            "token": tok, "currency": "USDC", "decimals": 6, "rate_per_kwh": 245000,
            "intervals": 1, "reports": []}
    st = plug_status(prov, {"native": 10**18, "token": 1200000})
    st["alerts"] = [{"kind": "wallet_cannot_pay", "account": 0, "invoice": "2-0",
                     "amount_due": 2500000, "since": None, "supply": "at_risk",
                     "error": "token balance of 0xabc is 1200000, payment needs 2500000"}]
    assert "token balance of 0xabc is 1.20 USDC, payment needs 2.50 USDC" in status_text(st)


def test_status_names_the_firmware_build_and_the_plug_on_the_network():
    st = plug_status(None)
    st["device"].update({"firmware": {"version": "0.5.0", "build": "abc1234"},
                         "hostname": "plug-2024", "ip": "192.168.1.77", "rssi": -61})
    text = status_text(st)
    assert text.splitlines()[0].startswith("plug sim firmware 0.5.0 (abc1234)  config v1")
    assert "network name plug-2024  address 192.168.1.77  Wi-Fi -61 dBm" in text


def test_status_says_what_became_of_the_last_release():
    st = plug_status(None)
    assert "update" not in status_text(st)
    st["update"] = {"state": "rolled_back", "version": "0.7.0", "at": 849041000,
                    "reason": "not marked good after 3 boots on trial: RuntimeError: boom",
                    "refused": {"version": None, "at": 849041300,
                                "reason": "not a release bundle (bad magic)"}}
    text = status_text(st)
    assert ("update 0.7.0 ROLLED BACK: not marked good after 3 boots on trial: "
            "RuntimeError: boom") in text
    assert "update refused: not a release bundle (bad magic)" in text
    st["update"] = {"state": "good", "version": "0.6.0", "at": 849041000, "reason": ""}
    assert "update 0.6.0 running, kept after its trial" in status_text(st)
    assert "None" not in status_text(st)
