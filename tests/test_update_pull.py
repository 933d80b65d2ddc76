"""Releases the plug pulls itself (firmware/plug/update_pull.py): the owner's signed config
names update.url, and the virtual plug GETs it from a real HTTP server on 127.0.0.1 at
update.interval_s (at once when a config sets or changes the URL), streams it through the
same checks and staging as POST /update, installs it and reboots into it on trial. A bundle
it must not take (another signer's) is refused with the reason in /status; the one it runs,
still on the server, is dropped after its manifest without a trace, while on trial and
once kept; `update` must be a URL (the config is refused otherwise).
"""

import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ota_util import DAY_START, wait_for
from test_update_http import energy, paid_invoices, slot_record, update_state, version_of

from tools import release
from tools.scenario import OWNER_KEY, World, plug_config

pytestmark = pytest.mark.slow

OTHER_KEY = "0x" + "a1" * 32


class BundleServer:
    """Serves files by path and lists each GET's path."""

    def __init__(self):
        outer = self
        self.files = {}
        self.gets = []

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                outer.gets.append(path)
                body = outer.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the plug hung up (after a manifest it does not want)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.base = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def configure(w, p, **over):
    """A newer signed config for the plug, with these sections changed."""
    over.setdefault("meter", {"checkpoint_s": 10})
    over["server"] = {"port": p.http_port}
    cfg = plug_config(w.devnet.url, w.tariff.url, w.payee, w.chain_id, **over)
    p.config_version += 1
    return p.post_config(p.sign(cfg, p.config_version))


def test_the_plug_pulls_a_release_from_its_update_url(tmp_path_factory):
    from tools.deploy import stage

    out = tmp_path_factory.mktemp("bundles")
    srv = BundleServer()
    try:
        with World(DAY_START, log=lambda m: None) as w:
            p = w.add_plug("pull", speed=60, deploy=False)
            p.provision(config_over={"meter": {"checkpoint_s": 10}})
            bundles = {}
            for name, key in (("good", OWNER_KEY), ("stranger", OTHER_KEY)):
                flash = stage("sim")
                try:
                    release._stamp_version(flash, "sim", "0.6.0", "t3st")
                    path = str(out / (name + ".bin"))
                    release.make_bundle(key, "0.6.0", "sim", [p.address], path, flash=flash,
                                        build="t3st", trial_s=12)
                finally:
                    shutil.rmtree(flash, ignore_errors=True)
                with open(path, "rb") as f:
                    bundles[name] = f.read()
            srv.files["/stranger.bin"] = bundles["stranger"]
            srv.files["/plug.bin"] = bundles["good"]
            # not a URL: the config is refused with the field's path, nothing changes
            code, body = configure(w, p, update={"url": "ftp://x/plug.bin"})
            assert code == 400 and "update.url" in body.get("error", ""), body
            p.config_version -= 1
            # a stranger's bundle at the URL: refused with the reason, nothing staged
            code, body = configure(w, p, update={"url": srv.base + "/stranger.bin",
                                                 "interval_s": 3600})
            assert code == 200, body
            wait_for(lambda: "/stranger.bin" in srv.gets, timeout=60, what="a pull")
            wait_for(lambda: "refused" in update_state(p), timeout=60,
                     what="the stranger's bundle refused")
            assert "not by the plug's owner" in update_state(p)["refused"]["reason"]
            assert version_of(p) == "0.5.0"
            assert not os.path.exists(os.path.join(p.state, "stage"))
            assert srv.gets.count("/stranger.bin") == 1  # once an interval (an hour)
            # the owner's 0.6.0: pulled at once (the URL changed), installed, booted, kept
            e0, n0 = energy(p.status()), paid_invoices(p)
            code, body = configure(w, p, update={"url": srv.base + "/plug.bin",
                                                 "interval_s": 3600})
            assert code == 200, body
            wait_for(lambda: version_of(p) == "0.6.0", timeout=180,
                     what="the plug running the pulled 0.6.0")
            assert slot_record(p)["active"] == "slot/a"
            wait_for(lambda: update_state(p).get("state") == "good", timeout=180,
                     what="0.6.0 kept after its trial")
            pulls = srv.gets.count("/plug.bin")
            assert pulls >= 2  # the pull that installed it, and one at the trial's boot
            # the same bundle, still on the server, looked at again (a newer config with
            # a changed URL makes the plug look at once): dropped after its manifest, no
            # record, no reboot
            boots, u0 = p.boots, update_state(p)
            code, body = configure(w, p, update={"url": srv.base + "/plug.bin?again",
                                                 "interval_s": 3600})
            assert code == 200, body
            wait_for(lambda: srv.gets.count("/plug.bin") > pulls, timeout=60,
                     what="the look at the same bundle")
            time.sleep(3)  # what it would have done with it by now
            assert update_state(p) == u0 and p.boots == boots
            assert version_of(p) == "0.6.0"
            assert not os.path.exists(os.path.join(p.state, "stage"))
            wait_for(lambda: energy(p.status()) > e0, timeout=60, what="metering in 0.6.0")
            assert paid_invoices(p) >= n0
    finally:
        srv.close()
