"""A real MQTT broker (Debian's mosquitto) on a free loopback port, with users, an ACL
like the one the README recommends, and a paho-mqtt subscriber that keeps what it hears;
plus a fake broker on a raw socket for bad inputs. Used by tests/test_mqtt.py."""

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time

from tests.iface_util import wait_for
from tools.devnet import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

USERS = {"plug": "plug-secret-pw", "ha": "ha-pw", "guest": "guest-pw"}


class Broker:
    """mosquitto with password and ACL files: the plug's user writes under its base topic
    and the discovery prefix and reads its command topics; Home Assistant's user ("ha")
    reads everything and alone writes command topics; "guest" only reads."""

    def __init__(self, tmp, base):
        self.tmp = tmp
        self.base = base
        self.port = free_port()
        self.proc = None
        pw = os.path.join(tmp, "passwd")
        open(pw, "w").close()
        for user, password in USERS.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", pw, user, password], check=True,
                           capture_output=True)
        acl = os.path.join(tmp, "acl")
        with open(acl, "w") as f:
            f.write("user plug\n"
                    "topic write %s/#\n"
                    "topic write homeassistant/#\n"
                    "topic read %s/+/switch/set\n\n"
                    "user ha\n"
                    "topic read #\n"
                    "topic write %s/+/switch/set\n\n"
                    "user guest\n"
                    "topic read #\n" % (base, base, base))
        self.conf = os.path.join(tmp, "mosquitto.conf")
        with open(self.conf, "w") as f:
            # as whoever runs the tests (as root, mosquitto would switch to its own user,
            # who cannot read these files)
            f.write("user %s\nlistener %d 127.0.0.1\nallow_anonymous false\n"
                    "password_file %s\nacl_file %s\npersistence false\n"
                    % (pwd.getpwuid(os.getuid()).pw_name, self.port, pw, acl))
        for p in (pw, acl, self.conf):
            os.chmod(p, 0o600)
        self.log_path = os.path.join(tmp, "mosquitto.log")

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf, "-v"], stdout=self._log,
                                     stderr=subprocess.STDOUT)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return True
            except OSError:
                assert self.proc.poll() is None, self.log()
                return False
        wait_for(up, 20, "mosquitto listening")
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self._log.close()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port


class Listener:
    """A paho-mqtt client as `user` that records every message on `topics`."""

    def __init__(self, broker, user="ha", topics=("#",)):
        import paho.mqtt.client as mqtt

        self.msgs = []  # (topic, payload bytes, retain)
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id="test-%s-%d" % (user, time.monotonic_ns() % 10**9))
        self.c.username_pw_set(user, USERS[user])
        self.connected = threading.Event()

        def on_connect(c, userdata, flags, rc, props=None):
            for t in topics:
                c.subscribe(t, 0)
            self.connected.set()

        def on_message(c, userdata, m):
            with self.lock:
                self.msgs.append((m.topic, bytes(m.payload), bool(m.retain)))

        self.c.on_connect = on_connect
        self.c.on_message = on_message
        self.c.connect("127.0.0.1", broker.port, 30)
        self.c.loop_start()
        assert self.connected.wait(20), "test client could not connect"

    def since(self, mark=0):
        with self.lock:
            return list(self.msgs[mark:])

    def mark(self):
        with self.lock:
            return len(self.msgs)

    def last(self, topic, mark=0):
        for t, p, _ in reversed(self.since(mark)):
            if t == topic:
                return p
        return None

    def publish(self, topic, payload):
        info = self.c.publish(topic, payload, 0)
        info.wait_for_publish(10)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class FakeBroker:
    """A raw TCP server on loopback that plays a broker badly: `behave(conn, n)` is called
    for the n-th connection (in a thread); connections and their closing are counted."""

    def __init__(self, behave):
        self.behave = behave
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed_by_peer = 0
        self._stop = False
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port

    def _serve(self):
        self.sock.settimeout(0.5)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._one, args=(conn, self.accepted), daemon=True).start()

    def _one(self, conn, n):
        try:
            self.behave(conn, n)
            conn.settimeout(60)
            while conn.recv(4096):  # until the plug gives up on us
                pass
            self.closed_by_peer += 1
        except OSError:
            self.closed_by_peer += 1
        finally:
            conn.close()

    def close(self):
        self._stop = True
        self.sock.close()
