"""Wi-Fi kept up on a real ESP32 board file (lib/esp32_board.py WifiLink through
board_circuitsetup_6ch.wifi_link) against the fake `network` module of tests/fakehw:
a router that is still down at boot, a link that drops, and a signed config with a wrong
wifi.password, which must fall back to the credentials that last worked."""

from test_boards import APP_HEAP, CIRCUITSETUP, run
from iface_util import free_port

# The link is stepped on a made-up clock (one step a second) so that minutes of backoff
# take no time; the fake access point is switched as a router would be.
LINK = """
import time, network, ntptime
import esp32_board
import board_circuitsetup_6ch as board
from plug.store import Store
HOME = {"ssid": "home", "password": "secret"}
def ap_down(net=None):
    network.ap = {}
    network.WLAN._connected = False
    if net:  # the fake has no switch for a link that drops: end its pending connect too
        net.sta._polls = None
def ap_up(password="secret"):
    network.ap = {"ssid": "home", "password": password, "after_polls": 2}
lines = []
t0 = time.ticks_ms()
def at(s):
    return time.ticks_add(t0, s * 1000)
def link():
    return board.wifi_link(Store("state"), lines.append)
def connects():
    return len([e for e in network.log if e[0] == "connect"])
"""


def test_router_down_at_boot_then_up_after_30_s_connects_without_a_reboot(tmp_path):
    got = run(tmp_path, LINK + """
ap_down()
net = link()
booted = net.start(HOME)
seen = {}
for s in range(1, 91):
    if s == 30:
        ap_up()
    net.step(at(s))
    seen[s] = (net.status()["link"], connects())
    if s == 29:
        down = net.status()
print((booted, down, seen, net.status(), ntptime.calls, lines,
       Store("state").load("wifi_good")))
""")
    booted, down, seen, st, ntp_calls, lines, good = got
    assert booted is False
    assert down["link"] == "down" and 28 <= down["down_s"] <= 30
    assert down["error"] == "Wi-Fi 'home' not connected: access point not found (status 201)"
    assert down["failed_attempts"] == 3
    # tries at boot, then 5 s, 10 s and 20 s after each failure (seen a step later): the
    # fourth try finds the router
    tries = [s for s in range(2, 91) if seen[s][1] > seen[s - 1][1]]
    assert tries == [6, 17, 38]
    up = min(s for s in seen if seen[s][0] == "up")
    assert up <= 41 and all(seen[s][0] == "up" for s in range(up, 91))
    assert st == {"link": "up", "ssid": "home", "down_s": 0, "credentials": "config",
                  "failed_attempts": 0, "error": None}
    assert ntp_calls == 1  # the clock is set once the link is up
    assert any("next try in 5 s" in x for x in lines)
    assert any("next try in 20 s" in x for x in lines)
    assert lines[-1] == "[net] Wi-Fi 'home' up, address 192.168.1.77"
    assert good == {"ssid": "home", "password": "secret"}


def test_backoff_doubles_to_five_minutes_and_a_dropped_link_is_retried(tmp_path):
    got = run(tmp_path, LINK + """
ap_up()
net = link()
booted = net.start(HOME)
ap_down(net)  # the router loses power
tries = []
for s in range(1, 3601):
    n = connects()
    net.step(at(s))
    if connects() > n:
        tries.append(s)
    if s == 3000:
        ap_up()
print((booted, tries, net.status()["link"], [x for x in lines if "lost" in x]))
""")
    booted, tries, link, lost = got
    assert booted is True and link == "up"
    gaps = [b - a - 1 for a, b in zip(tries, tries[1:])]  # a failure is seen a step later
    assert gaps[:7] == [5, 10, 20, 40, 80, 160, 300] and set(gaps[7:]) == {300}
    assert tries[-1] - 3000 <= 300  # back within one backoff of the router returning
    assert lost == ["[net] Wi-Fi 'home' lost: reconnecting"]


def test_wrong_password_in_a_new_config_falls_back_to_the_last_good_one(tmp_path):
    got = run(tmp_path, LINK + """
ap_up()
net = link()
net.start(HOME)
bad = {"ssid": "home", "password": "typo"}
s = 0
while s < 120:
    s += 1
    net.configure(bad)   # the signed config now in force
    net.step(at(s))
    if net.up:
        break
fell_back = (s, net.status())
# a reboot on the same flash: the bad config is still in force, the fallback still known
network.WLAN._connected = False
net2 = link()
rebooted = net2.start(bad)
for k in range(s + 1, s + 121):
    net2.step(at(k))
    if net2.up:
        break
after_reboot = net2.status()
# the owner sends a corrected config: it is used, and becomes the new fallback
ap_up("new-pw")
net2.configure({"ssid": "home", "password": "new-pw"})
for j in range(k + 1, k + 30):
    net2.step(at(j))
print((fell_back, rebooted, after_reboot, net2.status(), Store("state").load("wifi_good"),
       lines))
""")
    fell_back, rebooted, after_reboot, fixed, good, lines = got
    s, st = fell_back
    assert st["link"] == "up" and st["credentials"] == "last_good" and st["ssid"] == "home"
    assert s <= 25  # three tries of the bad password (5 s, 10 s apart), then the good one
    assert rebooted is False
    assert after_reboot["link"] == "up" and after_reboot["credentials"] == "last_good"
    assert fixed["link"] == "up" and fixed["credentials"] == "config"
    assert good == {"ssid": "home", "password": "new-pw"}
    assert any("failed 3 times" in x and "trying the last working credentials" in x
               for x in lines)
    assert any("LAST WORKING credentials" in x and "the config stays as applied" in x
               for x in lines)
    assert not any("typo" in x or "secret" in x for x in lines)  # no password in the log


# The whole app on the board: boots with the router down, meters, and its network task
# brings the link up once the router is back, with no reboot. Timings are shortened.
APP = "EXTRA = []\n" + CIRCUITSETUP.replace("fes = board.front_ends(board.clock())", "") + """
import asyncio, time, network
import esp32_board
from plug.app import Plug
import wifi_link
wifi_link.NET_FIRST_BACKOFF_MS = 300
wifi_link.NET_POLL_MS = 50
network.ap = {}
clk.speed = 1
board.clock = lambda: clk
plug = Plug(board, state="state")
seen = []
async def probe():
    for i in range(16):
        await asyncio.sleep_ms(250)
        if i == 6:
            network.ap = {"ssid": "home", "password": "secret", "after_polls": 1}
        st = plug.status()
        seen.append((st["device"]["network"]["link"], plug.meter.reads,
                     sum(c["import_uwh"] for c in st["channels"].values())))
    plug._reboot = True
asyncio.create_task(probe())
try:
    asyncio.run(plug.run(port=%d, repl_on=False))
except SystemExit:
    pass
print((plug.online, seen))
"""


def test_app_brings_the_link_up_while_it_runs_and_keeps_metering(tmp_path):
    settings = {"factory": {"wifi": {"ssid": "home", "password": "secret"},
                            "meter": {"read_interval_ms": 200}}}
    online_at_boot, seen = run(tmp_path, APP % free_port(), settings=settings, heap=APP_HEAP)
    assert online_at_boot is False
    links = [s[0] for s in seen]
    assert "up" not in links[:6] and links[-1] == "up"
    reads = [s[1] for s in seen]
    energy = [s[2] for s in seen]
    up = links.index("up")  # metering went on while connecting, and after (not per probe:
    assert reads[0] < reads[up - 1] < reads[-1], reads  # a loaded host may run two probes
    assert energy[0] < energy[up - 1] < energy[-1], energy  # between reads)


def test_the_app_names_the_plug_before_connecting_and_shows_mac_ip_rssi(tmp_path):
    # network.hostname("plug-<last 4 hex of the wallet's address>") before the first
    # connect, so the router's DHCP table and mDNS show the plug by that name
    code = (APP % free_port()).replace("print((plug.online, seen))", """
dev = plug.status()["device"]
print((plug.address(), [e for e in network.log if e[0] in ("hostname", "connect")],
       network.hostname(), dev["hostname"], dev["mac"], dev["ip"], dev["rssi"]))
""")
    settings = {"factory": {"wifi": {"ssid": "home", "password": "secret"},
                            "meter": {"read_interval_ms": 200}}}
    addr, log, name, shown, mac, ip, rssi = run(tmp_path, code, settings=settings,
                                                heap=APP_HEAP)
    want = "plug-" + addr[-4:].lower()
    assert log[0] == ("hostname", want) and ("connect", "home") in log[1:], log
    assert name == shown == want
    assert (mac, ip, rssi) == ("24:0a:c4:12:ab:cd", "192.168.1.77", -61)
