"""https on the plug (plug/http_client.py on the MicroPython unix port, whose mbedtls is
the ESP32's): the server's certificate is checked against the CA certificates that
`plugctl deploy --ca` puts on the flash, or nothing is sent. Real TLS servers on
loopback (CPython ssl), certificates made with openssl."""

import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from tools import mp
from tools.deploy import DeployError, ca_der

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'
TRICKLE_S = 0.5


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Two roots; leaves for localhost and for another name, signed by root 1 or 2."""
    d = str(tmp_path_factory.mktemp("pki"))
    for ca in ("ca1", "ca2"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key",
                 "-out", ca + ".pem", "-days", "2", "-subj", "/CN=Test Root " + ca,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for leaf, ca, name in (("good", "ca1", "localhost"), ("other_name", "ca1", "other.example"),
                           ("foreign", "ca2", "localhost")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", leaf + ".key", "-out",
                 leaf + ".csr", "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, leaf + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n" % name)
        _openssl("x509", "-req", "-in", leaf + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                 "-CAcreateserial", "-out", leaf + ".pem", "-days", "1", "-extfile",
                 leaf + ".ext", cwd=d)
    # root 1's certificate for localhost that ran out in 2020 (`openssl ca` sets the dates)
    os.makedirs(os.path.join(d, "db"))
    open(os.path.join(d, "db", "index.txt"), "w").close()
    with open(os.path.join(d, "db", "serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = db/index.txt\nserial = db/serial\n"
                "new_certs_dir = db\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n"
                "[p]\ncommonName = supplied\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "expired.key", "-out",
             "expired.csr", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
             cwd=d)
    _openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca1.pem", "-keyfile", "ca1.key",
             "-in", "expired.csr", "-out", "expired.pem", "-startdate", "20200101000000Z",
             "-enddate", "20200102000000Z", cwd=d)
    return d


class Server:
    """A TLS server on loopback with one certificate: /ok answers, /trickle trickles."""

    def __init__(self, pki, leaf):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(pki, leaf + ".pem"), os.path.join(pki, leaf + ".key"))
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.stop = threading.Event()
        self.seen = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                raw, _ = self.srv.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as c:
                    c.settimeout(10)
                    req = c.recv(4096)
                    self.seen.append(req)
                    if req.startswith(b"GET /ok "):
                        c.sendall(OK)
                    else:
                        c.sendall(b"HTTP/1.1 200 OK\r\n")
                        while not self.stop.wait(TRICKLE_S):
                            c.sendall(b"X")
            except OSError:  # the plug refused our certificate: no request came
                pass

    def close(self):
        self.stop.set()
        self.srv.close()


PLUG = """
import json, time
from plug import http_client as hc, tls_ca
tls_ca.CA_FILE = %r
out = []
for path, deadline in %r:
    t = time.ticks_ms()
    try:
        st, b = hc.request('GET', 'https://localhost:%d' + path, timeout_s=2, deadline_ms=deadline)
        out.append([st, bytes(b).decode()])
    except OSError as e:
        out.append([type(e).__name__, str(e)])
    out[-1].append(time.ticks_diff(time.ticks_ms(), t))
print(json.dumps(out))
"""


def plug_get(mpy_dirs, ca_file, port, paths=(("/ok", 5000),)):
    out = mp.run(PLUG % (ca_file, list(paths), port), heap="128k", path_dirs=mpy_dirs,
                 timeout=60)
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def ca_file(pki, tmp_path):
    """ca.der as `plugctl deploy --ca` writes it, from root 1's PEM."""
    path = str(tmp_path / "ca.der")
    with open(path, "wb") as f:
        f.write(ca_der(os.path.join(pki, "ca1.pem")))
    return path


def test_a_server_the_ca_vouches_for_is_read_within_the_deadline(pki, ca_file, mpy_dirs):
    srv = Server(pki, "good")
    try:
        ok, trickle = plug_get(mpy_dirs, ca_file, srv.port, (("/ok", 5000), ("/trickle", 2500)))
    finally:
        srv.close()
    assert ok[:2] == [200, '{"a": true}']
    assert trickle[0] == "ReplyError" and "not complete within 2 s" in trickle[1]
    assert 2450 <= trickle[2] < 3200
    assert srv.seen[0].startswith(b"GET /ok HTTP/1.0\r\nHost: localhost:")


@pytest.mark.parametrize("leaf, why", [
    ("foreign", "not correctly signed by the trusted CA"),  # someone else's certificate
    ("other_name", "Common Name (CN) does not match"),  # our CA, another host name
    ("expired", "validity has expired"),  # our CA, our host name, out of date
])
def test_a_server_the_ca_does_not_vouch_for_gets_nothing(pki, ca_file, mpy_dirs, leaf, why):
    srv = Server(pki, leaf)
    try:
        (res,) = plug_get(mpy_dirs, ca_file, srv.port)
    finally:
        srv.close()
    assert res[0] == "OSError" and "certificate of localhost refused" in res[1], res
    assert why in res[1], res
    assert srv.seen == []  # not a byte of the request


def test_refused_handshakes_leave_no_socket_open(pki, ca_file, mpy_dirs):
    srv = Server(pki, "foreign")
    code = ("import os, gc\nfrom plug import http_client as hc, tls_ca\ntls_ca.CA_FILE = %r\n"
            "fds = lambda: len(os.listdir('/proc/self/fd'))\nbefore = fds()\n"
            "for i in range(8):\n    try:\n"
            "        hc.request('GET', 'https://localhost:%d/ok', timeout_s=2)\n"
            "    except OSError as e:\n        err = str(e)\n"
            "gc.collect()\nprint(before, fds(), err)\n" % (ca_file, srv.port))
    try:
        out = mp.run(code, heap="128k", path_dirs=mpy_dirs, timeout=60)
    finally:
        srv.close()
    before, after, err = out.strip().splitlines()[-1].split(" ", 2)
    assert "certificate of localhost refused" in err
    assert before == after  # a wrong certificate, retried, does not use up the sockets


def test_a_server_that_trickles_its_handshake_is_given_up_at_the_deadline(ca_file, mpy_dirs):
    """A peer (or someone on the LAN in front of it) that sends the TLS handshake a byte at
    a time, each well within the read timeout: only the overall deadline stops it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    stop = threading.Event()

    def trickle():
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KB...
            while not stop.wait(TRICKLE_S):
                conn.sendall(b"\x02")  # ...that comes a byte at a time

    threading.Thread(target=trickle, daemon=True).start()
    try:
        (res,) = plug_get(mpy_dirs, ca_file, srv.getsockname()[1], (("/ok", 2500),))
    finally:
        stop.set()
        srv.close()
    assert res[0] == "ReplyError" and "not complete within 2 s" in res[1], res
    assert 2450 <= res[2] < 3200


def test_without_ca_certificates_https_is_refused_before_connecting(pki, tmp_path, mpy_dirs):
    srv = Server(pki, "good")
    bad = tmp_path / "garbage.der"
    bad.write_bytes(b"\x30\x82\xff\xffnot a certificate")
    try:
        missing, garbage = (plug_get(mpy_dirs, path, srv.port)[0]
                            for path in (str(tmp_path / "none.der"), str(bad)))
    finally:
        srv.close()
    assert missing[0] == "OSError" and "no CA certificates on the plug" in missing[1]
    assert garbage[0] == "OSError" and "is not usable" in garbage[1]
    big = tmp_path / "big.der"
    big.write_bytes(b"\x00" * 16385)
    (res,) = plug_get(mpy_dirs, str(big), srv.port)
    assert res[0] == "OSError" and "over 16384 bytes" in res[1]
    assert srv.seen == []


def test_a_bundle_of_roots_is_accepted_and_bad_files_are_refused_on_the_host(pki, tmp_path,
                                                                             mpy_dirs):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("\n".join(open(os.path.join(pki, n + ".pem")).read()
                                for n in ("ca2", "ca1")))
    der = ca_der(str(bundle))
    assert der == b"".join(ssl.PEM_cert_to_DER_cert(open(os.path.join(pki, n + ".pem")).read())
                           for n in ("ca2", "ca1"))
    path = tmp_path / "ca.der"
    path.write_bytes(der)
    srv = Server(pki, "good")  # vouched for by the second root of the bundle
    try:
        (res,) = plug_get(mpy_dirs, str(path), srv.port)
    finally:
        srv.close()
    assert res[:2] == [200, '{"a": true}']
    bad = tmp_path / "bad.der"
    key_der = subprocess.run(["openssl", "pkey", "-in", os.path.join(pki, "ca1.key"),
                              "-outform", "DER"], check=True, capture_output=True).stdout
    for data in (b"not a certificate\n", b"", b"\x30\x03abc", key_der):  # framing is not enough
        bad.write_bytes(data)
        with pytest.raises(DeployError, match="no certificates"):
            ca_der(str(bad))
    bad.write_bytes(der * 12)  # a whole system bundle would not fit the plug's heap
    with pytest.raises(DeployError, match="the plug takes 16384"):
        ca_der(str(bad))


def test_deploy_stages_ca_der_beside_main_py(pki):
    import shutil

    from tools.deploy import stage

    for ca in (os.path.join(pki, "ca1.pem"), None):
        flash = stage("sim", ca)
        try:
            assert os.path.exists(os.path.join(flash, "main.py"))
            path = os.path.join(flash, "ca.der")
            if ca:
                assert open(path, "rb").read() == ca_der(ca)
            else:
                assert not os.path.exists(path)
        finally:
            shutil.rmtree(flash)


# -- ca.der streamed (issue 11: no block the size of the file; once at boot) ----------------

HOLES = """
import gc, sys
sys.path.append(%r)
import heap_holes, tls
from plug import http_client as hc, rpc, tls_ca
tls_ca.CA_FILE = %r
"""


def _holes_code(ca_file):
    from tools.paths import ROOT

    return HOLES % (os.path.join(ROOT, "tools"), ca_file)


def test_ca_der_loads_into_a_heap_with_no_block_as_large_as_the_file(pki, tmp_path, mpy_dirs):
    """Nine roots (about 7 KB) into a heap fragmented into holes of 3.5 KB: every piece is
    a certificate or the context itself (3.1 KB on this 64-bit port, 1.8 KB on 32 bits),
    never the file (the old single read asked 16 KB). The context then serves a request."""
    roots = [ca_der(os.path.join(pki, n + ".pem")) for n in ("ca2",) * 8 + ("ca1",)]
    path = tmp_path / "ca.der"
    path.write_bytes(b"".join(roots))
    assert 6000 < len(b"".join(roots)) <= 16384 and max(len(r) for r in roots) < 1500
    srv = Server(pki, "good")  # vouched for by the last root
    code = _holes_code(str(path)) + (
        "keep = heap_holes.holes(3584)\n"
        "try:\n    tls_ca.context()\n    print('built')\n"
        "except MemoryError as e:\n    print('no room:', e)\n"
        "keep = None\ngc.collect()\n"
        "st, b = hc.request('GET', 'https://localhost:%d/ok', timeout_s=2, deadline_ms=5000)\n"
        "print(st, bytes(b).decode())\n" % srv.port)
    try:
        out = mp.run(code, heap="128k", path_dirs=mpy_dirs, timeout=60)
    finally:
        srv.close()
    lines = out.strip().splitlines()
    assert lines[-2:] == ["built", '200 {"a": true}'], out


def test_out_of_memory_loading_ca_der_is_reported_as_such(pki, ca_file, mpy_dirs):
    """An RPC call over https with no room to load the CA certificates says that, not that
    the node's reply was too large."""
    code = _holes_code(ca_file) + (
        "r = rpc.RPC(['https://localhost:9'], timeout_s=2, retries=0)\n"
        "keep = heap_holes.holes(256)\n"
        "try:\n    r.call('eth_blockNumber')\n    msg = 'answered?'\n"
        "except rpc.Unreachable as e:\n    msg = str(e)\n"
        "keep = None\ngc.collect()\nprint(msg)\n")
    out = mp.run(code, heap="128k", path_dirs=mpy_dirs, timeout=60).strip().splitlines()[-1]
    assert "reply too large" not in out, out
    assert "out of memory: https: no memory to load the CA certificates of" in out, out


def test_a_certificate_over_the_bound_is_refused_by_name(pki, ca_file, tmp_path, mpy_dirs):
    srv = Server(pki, "good")
    big = tmp_path / "big_cert.der"
    body = b"\x02\x01\x00" * 1700  # framing a root never has: 5100 bytes in one SEQUENCE
    big.write_bytes(open(ca_file, "rb").read() + b"\x30\x82" + len(body).to_bytes(2, "big")
                    + body)
    try:
        (res,) = plug_get(mpy_dirs, str(big), srv.port)
    finally:
        srv.close()
    assert res[0] == "OSError" and "is not usable" in res[1], res
    assert "is 5104 bytes, over the 4096 bytes a root may have" in res[1], res
    assert srv.seen == []
    with pytest.raises(DeployError, match="over the 4096 bytes"):  # deploy refuses it first
        ca_der(str(big))


def test_the_context_is_built_once_at_boot_and_problems_are_logged(pki, ca_file, tmp_path,
                                                                   mpy_dirs):
    """boot() builds the context while the heap is whole; later requests use it (the file
    is not read again); a plug without ca.der logs nothing, a garbled one says why."""
    srv = Server(pki, "good")
    moved = str(tmp_path / "moved.der")
    code = _holes_code(ca_file) + (
        "logs = []\ntls_ca.boot(logs.append)\nimport os\nos.rename(%r, %r)\n"
        "st, b = hc.request('GET', 'https://localhost:%d/ok', timeout_s=2, deadline_ms=5000)\n"
        "print(st, logs)\n"
        "tls_ca._made = None\ntls_ca.CA_FILE = %r\ntls_ca.boot(logs.append)\nprint(logs)\n"
        "open(%r, 'wb').write(b'garbage!')\ntls_ca.CA_FILE = %r\ntls_ca.boot(logs.append)\n"
        "print(logs)\n"
        % (ca_file, moved, srv.port, ca_file, str(tmp_path / "bad.der"),
           str(tmp_path / "bad.der")))
    try:
        out = mp.run(code, heap="128k", path_dirs=mpy_dirs, timeout=60)
    finally:
        srv.close()
    ok, none, bad = out.strip().splitlines()[-3:]
    assert ok == "200 []" and none == "[]", out
    assert "[tls] https: %s is not usable: not a DER certificate at byte 0" % (
        tmp_path / "bad.der") in bad, out
