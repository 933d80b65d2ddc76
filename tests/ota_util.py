"""Host helpers for the over-the-air config and security tests: a virtual plug in a
World, owners that sign envelopes, and reading the plug's flash as a person with the
board on the bench could (the store's own slot format, tools-free)."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eth_account import Account

from tools.config_cli import sign_envelope
from tools.scenario import OWNER_KEY, plug_config

DAY_START = 1767225600  # 2026-01-01 00:00 UTC
OTHER_KEY = "0x" + "a1" * 32  # a stranger on the LAN with a key of their own
NEW_OWNER_KEY = "0x" + "b2" * 32  # whom the owner hands the plug to


def address(key):
    return Account.from_key(key).address


def flash_load(state_dir, name):
    """The newest good copy of a durable state file on the plug's flash, or None."""
    from plug.store import Store

    return Store(os.path.join(state_dir, "state")).load(name)


def flash_has(state_dir, name):
    d = os.path.join(state_dir, "state")
    return any(os.path.exists(os.path.join(d, "%s.%s" % (name, s))) for s in ("0", "1"))


class Signer:
    """The owner side: keeps the key in charge, the plug it signs for (its wallet
    address) and the next version to sign."""

    def __init__(self, world, plug, key=OWNER_KEY):
        self.world = world
        self.plug = plug
        self.key = key
        self.version = 0

    def config(self, **over):
        w = self.world
        return plug_config(w.devnet.url, w.tariff.url, w.payee, w.chain_id, **over)

    def envelope(self, cfg=None, version=None, key=None, plug=None):
        """A signed envelope; by default the next version, signed by the owner in charge
        for this signer's plug."""
        if version is None:
            self.version += 1
            version = self.version
        return sign_envelope(self.config() if cfg is None else cfg, version, key or self.key,
                             plug or self.plug)


def raw_post(url, path, body, headers=None, timeout=30):
    """POST raw bytes; (status, parsed JSON or text)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url + path, body, headers or {"Content-Type":
                                                               "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            code, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, text = e.code, e.read()
    try:
        return code, json.loads(text or b"{}")
    except ValueError:
        return code, text.decode("latin-1")


class EnvelopeServer:
    """A config pull URL: serves whatever body is set, counts the requests."""

    def __init__(self):
        outer = self
        self.body = b"{}"
        self.requests = 0

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests += 1
                body = outer.body
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/config.json" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, envelope):
        self.body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()

    def wait_requests(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while self.requests < n:
            if time.monotonic() > deadline:
                raise AssertionError("the plug did not pull its config (%d requests)"
                                     % self.requests)
            time.sleep(0.2)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)
