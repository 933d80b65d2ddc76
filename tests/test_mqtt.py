"""MQTT with Home Assistant discovery (issue 14): a virtual plug with a real anvil talks to
a real broker (Debian's mosquitto, password and ACL files) on loopback. A paho-mqtt
client in Home Assistant's place checks every discovery document against Home
Assistant's rules, that the states follow the simulator, that a command switches an
output (and that an output held off stays off), that the last will says "offline" on a
power cut, and that a stopped broker costs the plug nothing but MQTT. A fake broker on a
raw socket sends garbage, an oversize packet, or nothing at all."""

import ast
import hashlib
import json
import os
import re
import time

import pytest

from tests.iface_util import wait_for, yesterdays_world
from tests.mqtt_util import USERS, Broker, FakeBroker, Listener
from tools.paths import ROOT
from tools.scenario import plug_config
from tools.simrun import read_settings, save_settings

pytestmark = pytest.mark.slow

BASE = "home/plug1"
KEYS = ("M1/A", "M1/B", "M2/1", "M2/2", "M2/3")
TOKEN_SHA = hashlib.sha256(b"tok").hexdigest()
SPEED = 240
# a channel with a name: its entities are named after it
CHANNELS = {"M1/A": {"name": "Heater"}}

# Home Assistant's sensor device classes used here and the units it accepts for them
# (homeassistant.components.sensor.const DEVICE_CLASS_UNITS), and the state classes each
# allows (DEVICE_CLASS_STATE_CLASSES)
UNITS = {"power": {"W", "kW", "mW", "MW", "GW", "TW", "BTU/h"},
         "energy": {"Wh", "kWh", "MWh", "mWh", "GWh", "TWh", "MJ", "GJ", "cal", "kcal",
                    "Mcal", "Gcal"},
         "voltage": {"V", "mV", "kV", "MV", "µV"},
         "current": {"A", "mA"},
         "power_factor": {"%", None}}
STATE_CLASSES = {"power": {"measurement"}, "energy": {"total", "total_increasing", None},
                 "voltage": {"measurement"}, "current": {"measurement"},
                 "power_factor": {"measurement"}, None: {"measurement", "total",
                                                         "total_increasing", None}}
COMPONENT_KEYS = {"sensor", "binary_sensor", "switch"}
DISCOVERY = re.compile(r"^homeassistant/(sensor|binary_sensor|switch)/([A-Za-z0-9_-]+)/"
                       r"([A-Za-z0-9_-]+)/config$")


def mqtt_cfg(url, **over):
    m = {"url": url, "user": "plug", "password": USERS["plug"], "base_topic": BASE,
         "interval_s": 5, "commands": True}
    m.update(over)
    return m


def push(p, world, version, **over):
    over = dict(over)
    over.setdefault("server", {"port": p.http_port})
    over.setdefault("control", {"token_sha256": TOKEN_SHA})
    over.setdefault("channels", CHANNELS)
    cfg = plug_config(world.devnet.url, world.tariff.url, world.payee, world.chain_id, **over)
    return p.post_config(p.sign(cfg, version))


@pytest.fixture(scope="module")
def world():
    with yesterdays_world(log=lambda *a: None) as w:
        yield w


@pytest.fixture(scope="module")
def broker(world):
    b = Broker(world.tmp, BASE).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def ha(broker):
    lst = Listener(broker, "ha", ("homeassistant/#", BASE + "/#"))
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def plug(world, broker, ha):
    p = world.add_plug("mq", speed=SPEED, deploy=False)
    # the config that first names a broker starts MQTT at once (no reboot)
    p.provision({"control": {"token_sha256": TOKEN_SHA}, "mqtt": mqtt_cfg(broker.url),
                 "channels": CHANNELS})
    p.config_version = 1
    return p


def docs(ha):
    out = {}
    for t, payload, retain in ha.since():
        if t.startswith("homeassistant/"):
            if payload:
                out[t] = (json.loads(payload), retain)
            else:  # an empty retained payload removes the entity
                out.pop(t, None)
    return out


def test_discovery_documents_follow_home_assistants_schema(plug, broker, ha):
    # per channel 6 sensors (+ energy today and this month where the plug keeps periods),
    # balance, alerts, a switch per output
    per = "energy" in plug.status()["channels"]["M1/A"]
    want = len(KEYS) * (8 if per else 6) + 2 + len(KEYS)
    got = wait_for(lambda: (lambda d: d if len(d) >= want else None)(docs(ha)), 60,
                   "all %d discovery documents" % want)
    assert len(got) == want, sorted(got)
    # retained: a Home Assistant that starts later gets them all from the broker
    late = Listener(broker, "ha", ("homeassistant/#",))
    try:
        retained = wait_for(lambda: (lambda d: d if len(d) >= want else None)(docs(late)),
                            30, "the retained documents")
    finally:
        late.close()
    assert set(retained) == set(got) and all(r for _, r in retained.values())
    # one document at a time, each far below the 2 KB allocation bound (issue 11)
    assert max(len(p) for t, p, _ in ha.since() if t.startswith("homeassistant/")) < 1024
    addr = plug.status()["wallets"][0]["address"]
    node = "plug_" + addr[2:].lower()
    uids = set()
    energy = []
    for topic, (doc, _) in got.items():
        m = DISCOVERY.match(topic)
        assert m, topic
        comp, node_id, obj = m.groups()
        assert node_id == node
        assert comp in COMPONENT_KEYS
        assert doc["unique_id"] not in uids and doc["unique_id"] == node + "_" + obj
        uids.add(doc["unique_id"])
        assert doc["name"] and doc["availability_topic"] == BASE + "/availability"
        dev = doc["device"]
        assert dev["identifiers"] == [node] and dev["model"] == "sim"
        assert dev["manufacturer"] and dev["name"] and re.match(r"^\d+\.\d+\.\d+",
                                                                dev["sw_version"])
        assert doc["state_topic"].startswith(BASE + "/")
        if comp == "sensor":
            dc = doc.get("device_class")
            assert doc.get("unit_of_measurement") in UNITS[dc] if dc else True, doc
            assert doc.get("state_class") in STATE_CLASSES[dc], doc
            assert "{{ value_json." in doc["value_template"]
            if dc == "energy":
                energy.append(doc)
        elif comp == "switch":
            assert doc["command_topic"] == doc["state_topic"] + "/set"
            assert doc["payload_on"] == "ON" and doc["payload_off"] == "OFF"
        else:
            assert doc["device_class"] in ("problem", "power")
    # the energy dashboard: every channel's import and export, total_increasing in kWh;
    # today's and this month's energy have no state_class, so the dashboard is offered
    # only the totals (no double counting)
    assert len(energy) == (4 if per else 2) * len(KEYS)
    for doc in energy:
        assert doc["unit_of_measurement"] == "kWh"
        period = doc["unique_id"].endswith(("_today", "_month"))
        assert doc.get("state_class") == (None if period else "total_increasing"), doc
    # a channel's config name names its entities
    heater = [d for d, _ in got.values() if "_m1_a_" in d["unique_id"]]
    assert heater and all(d["name"].startswith("Heater ") for d in heater), heater
    assert all(d["name"].startswith("M1/B ") for d, _ in got.values()
               if "_m1_b_" in d["unique_id"])
    # the balance in the provider's currency (announced again once the provider is known)
    bal = "homeassistant/sensor/%s/balance/config" % node
    wait_for(lambda: docs(ha)[bal][0].get("unit_of_measurement") == "ETH", 60,
             "the balance's unit")
    dev = json.loads(wait_for(lambda: ha.last(BASE + "/device/state"), 30, "device state"))
    assert dev["currency"] == "ETH", dev
    # the connection in /status and /metrics
    st = plug.status()["device"]["mqtt"]
    assert st["state"] == "connected" and st["since"] > 1.6e9, st
    assert re.search(r"^plug_mqtt_connected 1(\.0)?$", plug.get("/metrics"), re.M)
    import jsonschema

    with open(os.path.join(ROOT, "tools", "status.schema.json")) as f:
        jsonschema.validate(st, json.load(f)["properties"]["device"]["properties"]["mqtt"])
    # /metrics names the provider money accrues to, not its number in the plug's history
    name = plug.status()["provider"]["name"]
    acc = wait_for(lambda: re.findall(r'^plug_accrued\{.*provider="([^"]*)"', plug.get("/metrics"),
                                      re.M), 60, "an accrued amount")
    assert set(acc) == {name}, (acc, name)
    # the password went nowhere but to the broker
    assert USERS["plug"] not in json.dumps(plug.status())
    assert USERS["plug"] not in plug.get("/metrics")


def test_states_follow_the_simulator(plug, ha):
    topic = BASE + "/m1_a/state"
    wait_for(lambda: ha.last(topic), 30, "a state of M1/A")
    before = plug.status()["channels"]
    mark = ha.mark()
    payload = wait_for(lambda: ha.last(topic, mark), 30, "a fresh state of M1/A")
    after = plug.status()["channels"]
    st = json.loads(payload)
    for k in ("power", "energy", "energy_export", "voltage", "current", "pf"):
        assert isinstance(st[k], (int, float)), st
    a, b = before["M1/A"], after["M1/A"]
    # energy between the two /status reads (kWh with 6 decimals, uWh in /status)
    assert a["import_uwh"] // 1000 <= round(st["energy"] * 1e6) <= b["import_uwh"] // 1000 + 1
    assert st["power"] == pytest.approx(b["W"], rel=0.05, abs=5)
    assert st["voltage"] == pytest.approx(b["V"], rel=0.02)
    assert st["current"] == pytest.approx(b["A"], rel=0.05, abs=0.05)
    assert st["power"] > 100  # the simulated load draws
    if "energy" in b:  # energy by period: today's import so far
        lo, hi = a["energy"]["today"]["import_uwh"], b["energy"]["today"]["import_uwh"]
        assert lo // 1000 <= round(st["today"] * 1e6) <= hi // 1000 + 1
        assert st["month"] >= st["today"]
    # the exporting channel (the PV load) shows its export
    pv = [k for k in KEYS if after[k]["export_uwh"] > 0]
    assert pv
    o = pv[0].lower().replace("/", "_")
    st = json.loads(wait_for(lambda: ha.last(BASE + "/%s/state" % o), 30, "PV state"))
    assert st["energy_export"] > 0
    dev = json.loads(wait_for(lambda: ha.last(BASE + "/device/state"), 30, "device state"))
    assert set(dev) >= {"balance", "currency", "alerts", "alert"}
    bal = plug.status()["wallets"][0]["balance"]
    if dev["balance"] is not None and bal:
        nat = bal["native"] if isinstance(bal, dict) else bal
        assert abs(float(dev["balance"]) - nat / 1e18) < 0.01
    assert ha.last(BASE + "/availability") == b"online"


HOLD = """
import time
plug.hold = 1
def _held():  # a money pass that lasts until the test lets go (plug.hold = 0)
    plug.hold_on = 1
    while plug.hold:
        plug._net_at = time.ticks_add(time.ticks_ms(), 200)  # the loop runs meanwhile
        yield
    plug.hold_on = 0
    del plug.money_steps
plug.money_steps = _held
"""


def test_states_wait_for_a_money_pass_to_end(plug, ha):
    # the state publication and a payment each take the most heap they ever hold; on an
    # ESP32 both at once left a payment without memory, so the states wait for the pass
    topic = BASE + "/m1_a/state"
    wait_for(lambda: ha.last(topic), 30, "a state of M1/A")
    plug.mpremote(HOLD)
    try:
        wait_for(lambda: plug.repl_eval("getattr(plug, 'hold_on', 0)"), 30, "a money pass")
        start = ha.mark()
        time.sleep(3 * 5 + 2)  # three state intervals (interval_s 5)
        end = ha.mark()
        assert plug.repl_eval("plug.hold_on and plug.money_busy") == 1  # still in the pass
    finally:
        plug.mpremote("plug.hold = 0")
    during = [m for m in ha.since(start)[:end - start] if m[0] == topic]
    assert len(during) <= 1, during  # at most one that began before the pass did
    wait_for(lambda: ha.last(topic, end), 30, "a state once the pass ended")
    wait_for(lambda: not plug.repl_eval("plug.hold_on"), 30, "the money pass ended")


def relay(plug, key):
    dev, ch = key.split("/")
    return plug.repl_eval("board.hardware()['chips'][%r].channels[%d].relay"
                          % (dev, ["A", "B"].index(ch) if dev == "M1" else int(ch) - 1))


def test_a_command_switches_an_output_only_from_home_assistants_user(plug, broker, ha):
    state = BASE + "/m1_a/switch"
    wait_for(lambda: ha.last(state) == b"ON", 30, "M1/A ON")
    # a user the ACL does not let write there: nothing changes
    guest = Listener(broker, "guest", ())
    try:
        guest.publish(state + "/set", b"OFF")
    finally:
        guest.close()
    time.sleep(3)
    assert plug.status()["outputs"]["M1/A"]["on"] is True
    mark = ha.mark()
    ha.publish(state + "/set", b"OFF")
    wait_for(lambda: ha.last(state, mark) == b"OFF", 30, "M1/A switched OFF")
    out = plug.status()["outputs"]["M1/A"]
    assert out["on"] is False and out["detail"] == "mqtt", out
    assert relay(plug, "M1/A") is False
    # garbage to a command topic is ignored
    ha.publish(state + "/set", b"maybe")
    ha.publish(BASE + "/m9_z/switch/set", b"ON")
    mark = ha.mark()
    ha.publish(state + "/set", b"ON")
    wait_for(lambda: ha.last(state, mark) == b"ON", 30, "M1/A switched ON")
    assert plug.status()["outputs"]["M1/A"]["on"] is True and relay(plug, "M1/A") is True


def test_an_output_held_off_is_not_switched_on(plug, ha):
    s = read_settings(plug.state)
    s["temp_c"] = 95
    save_settings(plug.state, s)
    try:
        wait_for(lambda: plug.status()["outputs"]["M1/B"]["reason"] == "over_temperature",
                 60, "over-temperature")
        state = BASE + "/m1_b/switch"
        wait_for(lambda: ha.last(state) == b"OFF", 30, "M1/B OFF")
        mark = ha.mark()
        ha.publish(state + "/set", b"ON")
        # the plug answers with its real state: still OFF
        wait_for(lambda: ha.last(state, mark) == b"OFF", 30, "M1/B state after ON")
        assert plug.status()["outputs"]["M1/B"]["on"] is False
        # the alerts the page shows: the protection trip among them
        dev = wait_for(lambda: (lambda p: p and b"over_temperature:M1/B" in p and p)(
            ha.last(BASE + "/device/state", mark)), 30, "the trip among the alerts")
        dev = json.loads(dev)
        assert dev["alerts"] >= 1 and "over_temperature:M1/B" in dev["alert"].split(","), dev
    finally:
        s = read_settings(plug.state)
        s["temp_c"] = 25
        save_settings(plug.state, s)
    wait_for(lambda: ha.last(BASE + "/m1_b/switch") == b"ON", 60, "M1/B back ON")


def test_commands_off_and_on_leave_no_stale_entity(plug, world, broker, ha):
    """Switching mqtt.commands swaps each output's switch for a binary_sensor (and back):
    the other component's config is removed (an empty retained payload), so Home
    Assistant never keeps two entities with one unique_id."""
    node = "plug_" + plug.status()["wallets"][0]["address"][2:].lower()
    sw = "homeassistant/switch/%s/m1_a_switch/config" % node
    bs = "homeassistant/binary_sensor/%s/m1_a_switch/config" % node

    def retained():
        late = Listener(broker, "guest", ("homeassistant/+/%s/m1_a_switch/config" % node,))
        try:
            time.sleep(1.5)  # the retained messages arrive on subscribing
            return docs(late)
        finally:
            late.close()

    for commands, want, other in ((False, bs, sw), (True, sw, bs)):
        mark = ha.mark()
        plug.config_version += 1
        code, body = push(plug, world, plug.config_version,
                          mqtt=mqtt_cfg(broker.url, commands=commands))
        assert code == 200, body
        wait_for(lambda o=other, m=mark: any(t == o and not p for t, p, _ in ha.since(m)), 60,
                 "the removal of %s" % other)
        got = retained()
        assert set(got) == {want}, (commands, sorted(got))
    wait_for(lambda: plug.status()["device"]["mqtt"]["state"] == "connected", 60,
             "connected again")


def test_last_will_and_a_broker_that_goes_away(plug, broker, ha):
    avail = BASE + "/availability"
    mark = ha.mark()
    plug.kill()  # a power cut: the broker publishes the will
    wait_for(lambda: ha.last(avail, mark) == b"offline", 60, "the last will")
    # booted again with the broker in its config: online, announced again
    wait_for(lambda: ha.last(avail, mark) == b"online", 120, "online after the reboot")
    plug.wait_http()

    # the broker stops: metering and /status go on
    broker.stop()
    e0 = plug.status()["channels"]["M1/A"]["import_uwh"]
    wait_for(lambda: plug.status()["channels"]["M1/A"]["import_uwh"] > e0, 30,
             "energy rising without a broker")
    time.sleep(4)
    e1 = plug.status()["channels"]["M1/A"]["import_uwh"]
    assert e1 > e0
    broker.start()
    fresh = Listener(broker, "ha", (BASE + "/#",))
    try:
        mark = fresh.mark()
        # back within the backoff: online again, states flow
        wait_for(lambda: fresh.last(avail, mark) == b"online", 120, "reconnected")
        wait_for(lambda: fresh.last(BASE + "/m1_a/state", mark), 30, "states again")
    finally:
        fresh.close()


def _garbage(conn, n):
    conn.recv(4096)  # CONNECT
    conn.sendall(b"\xff\xff\xff\xff\xff\x00garbage")


def _oversize(conn, n):
    conn.recv(4096)
    conn.sendall(b"\x20\x02\x00\x00")  # CONNACK: accepted
    conn.sendall(b"\x30\xff\xff\xff\x7f")  # a PUBLISH of 256 MB announced


def _stall(conn, n):
    conn.recv(4096)  # and never a CONNACK


@pytest.mark.parametrize("behave", [_garbage, _oversize, _stall])
def test_a_bad_broker_costs_only_the_mqtt_task(plug, world, behave):
    fake = FakeBroker(behave)
    try:
        plug.config_version += 1
        code, body = push(plug, world, plug.config_version, mqtt=mqtt_cfg(fake.url))
        assert code == 200, body
        # the plug drops each bad connection by itself and tries again, backing off
        wait_for(lambda: fake.closed_by_peer >= 2, 60, "two connections dropped by the plug "
                 "(%d accepted)" % fake.accepted)
        mq = plug.status()["device"]["mqtt"]
        assert mq["state"] in ("error", "connecting") and mq["error"], mq
        assert USERS["plug"] not in json.dumps(mq)
        assert re.search(r"^plug_mqtt_connected 0(\.0)?$", plug.get("/metrics"), re.M)
        e0 = plug.status()["channels"]["M1/A"]["import_uwh"]
        wait_for(lambda: plug.status()["channels"]["M1/A"]["import_uwh"] > e0, 30,
                 "energy rising")
    finally:
        fake.close()


def test_bad_mqtt_settings_are_refused_and_the_password_never_echoed(plug, world):
    secret = "s3cr3t-Pw"
    bad = [({"url": "http://127.0.0.1:1883"}, "mqtt.url"),
           ({"url": "mqtt://u:%s@host" % secret}, "mqtt.url"),
           ({"url": "mqtt://host:99999"}, "mqtt.url"),
           ({"url": "mqtts://host"}, "mqtt.url"),
           ({"user": "", "password": secret}, "mqtt.password"),
           ({"password": secret + "\n"}, "mqtt.password"),
           ({"base_topic": "a/+/b"}, "mqtt.base_topic"),
           ({"base_topic": "/lead"}, "mqtt.base_topic"),
           ({"discovery_prefix": "home/assistant"}, "mqtt.discovery_prefix"),
           ({"interval_s": 1}, "mqtt.interval_s"),
           ({"commands": "yes"}, "mqtt.commands"),
           ({"port": 1883}, "mqtt.port")]
    v = plug.status()["device"]["config_version"]
    for over, field in bad:
        m = mqtt_cfg("mqtt://127.0.0.1:1883", password=secret)
        m.update(over)
        code, body = push(plug, world, v + 1, mqtt=m)
        assert code == 400 and field in body["error"], (over, code, body)
        assert secret not in json.dumps(body)
    assert plug.status()["device"]["config_version"] == v


def test_names_defaults_and_framing_on_the_unix_port(micropython, mpy_dirs):
    """On MicroPython at 64 KB: the default base topic, the documents without commands,
    exact balances, and MQTT's remaining-length encoding (spec 2.2.3's examples)."""
    out = micropython.run(
        "from plug import mqtt, mqtt_ha\n"
        "from plug.config import validate\n"
        "m = validate({'mqtt': {'url': 'mqtt://broker.lan'}})['mqtt']\n"
        "n = mqtt_ha.Names('0x' + 'ab' * 18 + '12Cd', m, 'shelly_ade7953', '0.5.0')\n"
        "for t, doc in n.docs(['M1/A', 'M2/A'], ['M1/A'], False):\n"
        "    print(repr((t, doc)))\n"
        "v = [bytes(mqtt._vlen(x)) for x in (0, 127, 128, 16383, 16384, 2097151, 268435455)]\n"
        "print(repr([mqtt_ha.parse_url(m['url']), n.base, n.node, v,\n"
        "            mqtt_ha.amount(9998043307489472160, 18), mqtt_ha.amount(-5, 6),\n"
        "            mqtt_ha.amount(7, 0), mqtt_ha.device_state(None, 18, 'ETH', ())]))\n"
        "for t, doc in n.docs(['M1/A'], ['M1/A'], True, True, {'M1/A': 'Heater \"1\"\\t'},\n"
        "                      'EURC'):\n"
        "    print('N' + repr((t, doc)))\n"
        "print(repr([list(n.gone(['M1/A'], False)), list(n.gone(['M1/A'], True)),\n"
        "            mqtt_ha.symbol({'token': None, 'symbol': 'native'}),\n"
        "            mqtt_ha.symbol({'token': '0x' + '11' * 20, 'symbol': 'EURC'}),\n"
        "            mqtt_ha.device_state(5, 6, 'EURC', [{'kind': 'wallet_cannot_pay'}],\n"
        "                                 [('M1/B', 'over_temperature')])]))\n",
        heap="64k", path_dirs=mpy_dirs).strip().splitlines()
    gone_off, gone_on, native, token, held = ast.literal_eval(out[-1])
    named = [ast.literal_eval(line[1:]) for line in out if line.startswith("N")]
    out = [line for line in out[:-1] if not line.startswith("N")]
    docs = [ast.literal_eval(line) for line in out[:-1]]
    url, base, node, vlen, big, neg, whole, dev = ast.literal_eval(out[-1])
    # an output is a switch or a binary_sensor, never both: the other one is removed
    cfg = "homeassistant/%s/" + node + "/m1_a_switch/config"
    assert gone_off == [cfg % "switch"] and gone_on == [cfg % "binary_sensor"]
    named = dict((t, json.loads(d)) for t, d in named)
    assert named[cfg % "switch"]["name"] == 'Heater "1"  output'  # the tab: a space
    assert all(d["name"].startswith('Heater "1"  ') for d in named.values()
               if "m1_a" in d["unique_id"])
    sensors = dict((d["unique_id"][len(node) + 1:], d) for d in named.values())
    assert sensors["m1_a_energy"]["state_class"] == "total_increasing"
    for f in ("m1_a_today", "m1_a_month"):  # periods: no statistics (no double counting)
        assert "state_class" not in sensors[f] and sensors[f]["device_class"] == "energy"
        assert sensors[f]["unit_of_measurement"] == "kWh"
    assert sensors["balance"]["unit_of_measurement"] == "EURC"
    assert (native, token) == ("ETH", "EURC")
    assert json.loads(held) == {"balance": "0.000005", "currency": "EURC", "alerts": 2,
                                "alert": "wallet_cannot_pay,over_temperature:M1/B"}
    assert url == ("broker.lan", 1883)
    assert base == "plug-12cd" and node == "plug_" + "ab" * 18 + "12cd"
    assert len(docs) == 2 * 6 + 2 + 1
    comps = {t.split("/")[1] for t, _ in docs}
    assert comps == {"sensor", "binary_sensor"}  # commands off: the output is read-only
    for _, doc in docs:
        d = json.loads(doc)
        assert "command_topic" not in d and d["device"]["model"] == "shelly_ade7953"
    assert vlen == [b"\x00", b"\x7f", b"\x80\x01", b"\xff\x7f", b"\x80\x80\x01",
                    b"\xff\xff\x7f", b"\xff\xff\xff\x7f"]
    assert big == '"9.99804330748947216"' and neg == '"-0.000005"' and whole == '"7"'
    assert json.loads(dev) == {"balance": None, "currency": "ETH", "alerts": 0, "alert": ""}
