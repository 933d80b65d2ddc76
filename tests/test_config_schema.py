"""The plug's config schema and canonical encoding, run on MicroPython (64 KB heap).

Every case below goes through firmware/plug/config.py on the unix port in one batch
(tests/config_probe.py); the assertions are what an owner would see: the defaults a new
plug runs with, and for a bad config the dotted path of the field that is wrong.
The canonical encoding, which the owner's signature covers, must be byte for byte
CPython's json.dumps(sort_keys=True, separators=(",", ":")), which is what
`plugctl config sign` signs.
"""

import json

import pytest
from config_util import cpython_canonical, probe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

# (config, dotted path named in the refusal, words in the reason)
BAD = [
    # unknown keys, at every depth
    ({"colour": "red"}, "colour", "unknown key"),
    ({"chain": {"chainid": 1}}, "chain.chainid", "unknown key"),
    ({"channels": {"M1/A": {"name": "x", "tarif": 1}}}, "channels.M1/A.tarif", "unknown key"),
    ({"limits": {"per_payment": 1, "per_week": 2}}, "limits.per_week", "unknown key"),
    # wrong types
    ([1, 2], "config", "must be an object"),
    ({"chain": [31337]}, "chain", "must be an object"),
    ({"chain": {"chain_id": "31337"}}, "chain.chain_id", "must be an integer"),
    ({"chain": {"chain_id": True}}, "chain.chain_id", "must be an integer"),
    ({"meter": {"checkpoint_s": 60.0}}, "meter.checkpoint_s", "must be an integer"),
    ({"chain": {"eip1559": 1}}, "chain.eip1559", "must be true or false"),
    ({"chain": {"rpc_urls": "http://node:8545"}}, "chain.rpc_urls", "must be a list"),
    ({"chain": {"rpc_urls": ["http://a:1", 5]}}, "chain.rpc_urls[1]", "must be a string"),
    ({"provider": {"approved_payees": [PAYEE.lower()]}}, "provider.approved_payees[0]",
     "checksummed"),
    ({"provider": {"approved_payees": ["0x1234"]}}, "provider.approved_payees[0]",
     "checksummed"),
    ({"provider": {"approved_tokens": [None]}}, "provider.approved_tokens[0]", "checksummed"),
    ({"owner": "0xdeadbeef"}, "owner", "checksummed"),
    ({"wifi": {"ssid": None}}, "wifi.ssid", "must be a string"),
    ({"channels": []}, "channels", "must be an object"),
    ({"channels": {"M1/A": "fridge"}}, "channels.M1/A", "must be an object"),
    ({"channels": {"M1/A": {"max_current_a": 16.5}}}, "channels.M1/A.max_current_a",
     "must be an integer"),
    # out of range
    ({"meter": {"checkpoint_s": 9}}, "meter.checkpoint_s", "between 10 and 3600"),
    ({"meter": {"checkpoint_s": 3601}}, "meter.checkpoint_s", "between 10 and 3600"),
    ({"chain": {"confirmations": -1}}, "chain.confirmations", "between 0 and 64"),
    ({"chain": {"chain_id": 0}}, "chain.chain_id", "between 1 and"),
    ({"server": {"port": 0}}, "server.port", "between 1 and 65535"),
    ({"server": {"port": 65536}}, "server.port", "between 1 and 65535"),
    ({"settlement": {"max_fee_share_pct": 101}}, "settlement.max_fee_share_pct",
     "between 0 and 100"),
    ({"limits": {"per_payment": -1}}, "limits.per_payment", "between 0 and"),
    ({"limits": {"per_day": 2**128 + 1}}, "limits.per_day", "between 0 and"),
    ({"provider": {"rate_cap_per_kwh": 2**200}}, "provider.rate_cap_per_kwh", "between 0 and"),
    ({"chain": {"rpc_urls": []}}, "chain.rpc_urls", "1 to 4 entries"),
    ({"chain": {"rpc_urls": ["http://a:1"] * 5}}, "chain.rpc_urls", "1 to 4 entries"),
    ({"chain": {"rpc_urls": ["ftp://node"]}}, "chain.rpc_urls[0]", "http:// or https://"),
    ({"provider": {"url": "javascript:alert(1)"}}, "provider.url", "http:// or https://"),
    ({"pull": {"url": "http://" + "x" * 200}}, "pull.url", "longer than 200"),
    ({"wifi": {"ssid": "s" * 33}}, "wifi.ssid", "longer than 32"),
    ({"provider": {"fallback": "pay"}}, "provider.fallback", "one of hold, rate"),
    ({"wallet": {"mode": "shared"}}, "wallet.mode", "one of single, per_channel"),
    ({"provider": {"approved_payees": [PAYEE] * 9}}, "provider.approved_payees",
     "0 to 8 entries"),
    ({"channels": {"M1A": {}}}, "channels.M1A", "DEVICE/CHANNEL"),
    ({"channels": {"M1/A/B": {}}}, "channels.M1/A/B", "DEVICE/CHANNEL"),
    ({"channels": {"LONGDEVICE/A": {}}}, "channels.LONGDEVICE/A", "DEVICE/CHANNEL"),
    ({"channels": {"M1/-": {}}}, "channels.M1/-", "DEVICE/CHANNEL"),
    ({"channels": {"M1/A": {"max_current_a": 0}}}, "channels.M1/A.max_current_a",
     "between 1 and 100"),
    ({"channels": {"M1/A": {"account": 256}}}, "channels.M1/A.account", "between 0 and 255"),
    ({"channels": {"M%d/A" % i: {} for i in range(17)}}, "channels", "more than 16 entries"),
    # outputs (issue 13)
    ({"channels": {"M1/A": {"power_on": "last"}}}, "channels.M1/A.power_on",
     "one of off, on, restore_last"),
    ({"control": {"token_sha256": "ab" * 31}}, "control.token_sha256", "64 lower-case hex"),
    ({"control": {"token_sha256": "AB" * 32}}, "control.token_sha256", "64 lower-case hex"),
    ({"protect": {"max_power_w": -1}}, "protect.max_power_w", "between 0 and 100000"),
    ({"protect": {"hold_s": 1.5}}, "protect.hold_s", "must be an integer"),
    ({"supply": {"on_unpaid": "stop"}}, "supply.on_unpaid", "one of keep, cut"),
]

GOOD = [
    {},
    {"meter": {"checkpoint_s": 10}},
    {"meter": {"checkpoint_s": 3600}},
    {"server": {"port": 1}},
    {"server": {"port": 65535}},
    {"limits": {"per_day": 2**128}},
    {"owner": None},
    {"owner": PAYEE},
    {"provider": {"approved_payees": [PAYEE], "url": "https://provider.example/p.json",
                  "fallback": "rate", "fallback_rate_per_kwh": 5}},
    {"chain": {"rpc_urls": ["http://a:1", "https://b", "http://c", "http://d"]}},
    {"channels": {"M1/A": {"name": "Fridge \u00e9\u00e8", "max_current_a": 100,
                           "account": 255}, "M2/3": {}}},
    {"wifi": {"ssid": "s" * 32, "password": "p\u00fc" * 32}},
    {"control": {"token_sha256": "0f" * 32}, "protect": {"max_power_w": 3500, "hold_s": 0},
     "supply": {"on_unpaid": "cut", "grace_s": 0}},
]


@pytest.fixture(scope="module")
def answers():
    cases = [{"op": "validate", "cfg": c} for c, _p, _w in BAD]
    cases += [{"op": "validate", "cfg": c} for c in GOOD]
    return probe(cases)


@pytest.mark.parametrize("i", range(len(BAD)), ids=[b[1] for b in BAD])
def test_a_bad_field_is_refused_naming_its_path(answers, i):
    cfg, path, words = BAD[i]
    a = answers[i]
    assert "crash" not in a, a
    assert "err" in a, "accepted: %r" % (cfg,)
    assert a["err"].startswith(path + ": "), a["err"]
    assert words in a["err"], a["err"]


def test_defaults_are_what_a_new_plug_runs_with(answers):
    cfg = json.loads(answers[len(BAD)]["ok"])
    assert cfg["chain"] == {"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"],
                            "confirmations": 1, "eip1559": True, "tx_deadline_s": 300,
                            "max_fee_per_gas": 0}
    assert cfg["meter"]["checkpoint_s"] == 60
    assert cfg["provider"]["fallback"] == "hold"  # unpriced energy waits; nothing is paid
    assert cfg["provider"]["approved_payees"] == []  # no payee until the owner names one
    assert cfg["provider"]["url"] == "" and cfg["pull"]["url"] == ""
    assert cfg["wallet"]["mode"] == "single"
    assert cfg["server"] == {"port": 80, "max_request_bytes": 4096, "max_connections": 4}
    assert cfg["owner"] is None and cfg["channels"] == {}
    assert cfg["limits"] == {"per_payment": 10**17, "per_day": 10**18, "gas_floor_wei": 10**15}


@pytest.mark.parametrize("i", range(len(GOOD)))
def test_good_configs_are_accepted_with_defaults_filled_in(answers, i):
    a = answers[len(BAD) + i]
    assert "ok" in a, a
    cfg = json.loads(a["ok"])
    given_cfg = GOOD[i]
    for section, fields in given_cfg.items():
        if isinstance(fields, dict) and section != "channels":
            for k, v in fields.items():
                assert cfg[section][k] == v, (section, k)
        elif section == "channels":
            for key, ch in fields.items():
                full = cfg["channels"][key]
                assert set(full) == {"name", "max_current_a", "account", "power_on"}
                for k, v in ch.items():
                    assert full[k] == v
        else:
            assert cfg[section] == fields
    # every section is there, filled with defaults
    assert set(cfg) == set(json.loads(answers[len(BAD)]["ok"]))


ENVELOPES = [
    ('{"version":1,"plug":"%s","config":{},"signature":"0x%s"}' % (PAYEE, "ab" * 65), None),
    ('{"version":1,"config":{},"signature":"0x%s"}' % ("ab" * 65),
     "envelope.plug: missing; sign the config for this plug"),
    ('{"version":1,"plug":"%s","config":{},"signature":"0x%s"}' % (PAYEE.lower(), "ab" * 65),
     "envelope.plug: must be a checksummed 0x address"),
    ('{"version":1,"plug":7,"config":{},"signature":"0x%s"}' % ("ab" * 65), "envelope.plug"),
    ("not json at all", "envelope: not valid JSON"),
    ('{"version":1,"config":{},"signature":"0x%s"' % ("ab" * 65), "envelope: not valid JSON"),
    ("[1,2,3]", "envelope: must be an object"),
    ('{"version":1,"config":{},"signature":"0x%s","extra":1}' % ("ab" * 65),
     "envelope.extra: unknown key"),
    ('{"version":0,"config":{},"signature":"0x%s"}' % ("ab" * 65), "envelope.version"),
    ('{"version":-3,"config":{},"signature":"0x%s"}' % ("ab" * 65), "envelope.version"),
    ('{"version":"2","config":{},"signature":"0x%s"}' % ("ab" * 65), "envelope.version"),
    ('{"version":true,"config":{},"signature":"0x%s"}' % ("ab" * 65), "envelope.version"),
    ('{"version":1.0,"config":{},"signature":"0x%s"}' % ("ab" * 65), "envelope.version"),
    ('{"version":%d,"config":{},"signature":"0x%s"}' % (2**53, "ab" * 65), "envelope.version"),
    ('{"config":{},"signature":"0x%s"}' % ("ab" * 65), "envelope.version"),
    ('{"version":1,"config":[],"signature":"0x%s"}' % ("ab" * 65), "envelope.config"),
    ('{"version":1,"signature":"0x%s"}' % ("ab" * 65), "envelope.config"),
    ('{"version":1,"config":{},"signature":"0x%s"}' % ("ab" * 64), "envelope.signature"),
    ('{"version":1,"config":{},"signature":"%s"}' % ("ab" * 66), "envelope.signature"),
    ('{"version":1,"config":{},"signature":"0x%s"}' % ("zz" * 65), "envelope.signature"),
    ('{"version":1,"config":{},"signature":12}', "envelope.signature"),
    ('{"version":1,"config":{},"signature":"0x%s"}' % ("ab" * 65) + " " * 8192,
     "envelope: larger than 8192 bytes"),
    ("[" * 5000 + "]" * 5000, "envelope"),
    ("", "envelope: not valid JSON"),
]


def test_envelopes_are_parsed_strictly():
    # 128k: this harness holds each 8 KB case line twice before the plug's code sees it
    out = probe([{"op": "envelope", "body": b} for b, _ in ENVELOPES], heap="128k")
    for (body, want), a in zip(ENVELOPES, out):
        assert "crash" not in a, (body[:80], a)
        if want is None:
            assert a["ok"] == [1, {}, PAYEE, "ab" * 65]
        else:
            assert "err" in a and a["err"].startswith(want), (body[:80], a)


def test_floats_and_non_json_values_cannot_be_signed():
    out = probe([{"op": "canonical", "v": {"a": 1.5}},
                 {"op": "canonical", "v": [0.1]},
                 {"op": "validate", "cfg": {"meter": {"checkpoint_s": 1e2}}}])
    assert "floats are not" in out[0]["err"] or "float values are not allowed" in out[0]["err"]
    assert "err" in out[1]
    assert out[2]["err"].startswith("meter.checkpoint_s: must be an integer")


# ---- canonical encoding == CPython's json.dumps(sort_keys, compact), on MicroPython ----

# MicroPython strings are UTF-8: they cannot hold lone surrogates, so neither can a config.
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
edgy = st.sampled_from(["", "\x00", "\x1f", "\x7f", "\"\\/", "\u2028\u2029", "\ufeff",
                        "\U0001F600", "\U0010FFFF", "\u00e9t\u00e9", "a\tb\nc\rd\be\f"])
keys = st.one_of(text, edgy)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.integers(-2**30, 2**30), text, edgy)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20)


def test_canonical_encoding_matches_cpython_json():
    values = []

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(json_values)
    def collect(v):
        values.append(v)

    collect()  # hypothesis generates; MicroPython then encodes all of them in one process
    cases = [{"op": "canonical", "v": v} for v in values]
    # sent once as UTF-8 and once as a host sends an envelope by default: \\u-escaped
    # ASCII, astral characters as surrogate pairs, which the plug must encode the same
    for out in (probe(cases), probe(cases, ascii_only=True)):
        for v, a in zip(values, out):
            assert a.get("ok") == cpython_canonical(v), (v, a)
    assert len(values) >= 300


def test_canonical_of_escaped_ascii_json_matches_cpython():
    values = ["\U0001F600 smile", {"\U0001F600": ["\u00e9", "\x00\x1f\x7f"]},
              {"b": 1, "a": [True, False, None], "\u00e9": -2**64}]
    out = probe([{"op": "canonical", "v": v} for v in values], ascii_only=True)
    for v, a in zip(values, out):
        assert a["ok"] == cpython_canonical(v), (v, a)


def test_signed_message_is_what_plugctl_signs():
    from tools.config_cli import canonical as host_canonical

    cfg = {"provider": {"approved_payees": [PAYEE], "url": "http://p/\u00e9"},
           "channels": {"M1/A": {"name": "K\u00fcche \U0001F600"}}, "limits": {"per_day": 7}}
    out = probe([{"op": "signed", "version": 42, "cfg": cfg, "plug": PAYEE}])
    assert out[0]["ok"].encode() == host_canonical(42, cfg, PAYEE)


def test_an_envelope_near_the_size_limit_is_verified_and_stored_in_136k(tmp_path):
    """The plug checks the owner's signature over the canonical encoding of a ~7 KB
    envelope (non-ASCII names and all) and stores it, from a cold start (loading the
    ECDSA code included) in 136 KB of heap, the .mpy code in it (frozen, it is in flash).
    The encoding is streamed into the hasher; building it whole needed more than 128 KB."""
    from eth_account import Account

    from tools.config_cli import sign_envelope

    key = "0x" + "c3" * 32
    owner = Account.from_key(key).address
    # 16 astral characters are 32 UTF-16 units: what the plug counts after JSON's
    # surrogate-pair escapes (see the report on string limits)
    cfg = {"channels": {"M%d/A" % i: {"name": "\U0001F50C" * 16, "max_current_a": 16}
                        for i in range(16)},
           "wifi": {"ssid": "\u00e9" * 32, "password": "\u00fc" * 64},
           "chain": {"rpc_urls": ["https://node.example/" + "r" * 170] * 4},
           "provider": {"approved_payees": [PAYEE] * 8, "approved_tokens": [PAYEE] * 8,
                        "url": "https://p.example/" + "x" * 150},
           "pull": {"url": "https://p.example/" + "y" * 150}}
    env = sign_envelope(cfg, 7, key, PAYEE)
    body = json.dumps(env)  # \\u-escaped ASCII, as the host sends it
    assert 6000 < len(body) <= 8192, len(body)
    d = str(tmp_path / "state")
    (tmp_path / "env.json").write_text(body)
    case = {"op": "apply", "dir": d, "owner": owner, "plug": PAYEE,
            "path": str(tmp_path / "env.json")}
    assert probe([case], heap="136k") == [{"ok": 7}]
    # and it stuck on the flash across a restart (a new process: a cold start again)
    assert "not newer" in probe([case], heap="136k")[0]["err"]
