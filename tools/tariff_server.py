"""Reference tariff server: a provider descriptor and its rates in every format the plug reads.

    plugctl tariff-server --schedule FILE --port N [--host 127.0.0.1]
                          [--format native] [--misbehave slow,500,...]

Schedule file (JSON):
    {"provider": {"name": "Example Energy", "payee": "0x...", "chain_id": 31337,
                  "currency": "native" | {"address": "0x...", "decimals": 6, "symbol": "EURC"},
                  "format": "native"},
     "signer_key": "0x<32 bytes>",          quote key (native format); never served
     "issued": <unix s>,                    optional, default: now
     "intervals": [{"start": <unix s>, "end": <unix s> | null, "price": "0.245"}, ...]}
`price` is in whole currency units per kWh as a decimal string (ETH or tokens for the
native format; GBP or EUR per kWh for the fiat formats, served as pence/kWh and
EUR/MWh floats like the real APIs).

Endpoints: GET /provider.json, /rates/native, /rates/octopus (?page=N, ?page_size=N,
newest first, `next` links), /rates/awattar, /rates/energy-charts.
GET /_control shows the state and request counts; POST /_control with a JSON object
changes it at runtime: {"misbehave": [...], "target": "all"|"provider"|"rates",
"delay_s": 30, "trickle_s": 1.0, "format": "octopus", "schedule": {...}, "page_size": 2,
"revise": true}. With "revise" every descriptor served carries a new name and rates URL
("Example Energy #7", ".../rates/native?rev=7"), as a provider that dates its rates URL.
Misbehaviours: slow, 500, truncated, malformed, oversize, swapped_payee, wrong_chain,
wrong_token, bad_signature, overlap, unsorted, wrong_types, above_cap, replay_old,
trickle (headers at once, then the body one byte every trickle_s seconds),
header_flood (200 000 header lines before the body), header_trickle (the status line,
then a header line of one byte every trickle_s seconds that never ends), long_header
(one header line of 100 KB before a valid reply).
"""

import argparse
import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NATIVE_FORMAT = "plug-rates/1"
FORMATS = ("native", "octopus", "awattar", "energy-charts")
MISBEHAVIOURS = ("slow", "500", "truncated", "malformed", "oversize", "swapped_payee",
                 "wrong_chain", "wrong_token", "bad_signature", "overlap", "unsorted",
                 "wrong_types", "above_cap", "replay_old", "trickle", "header_flood",
                 "header_trickle", "long_header")
ATTACKER = "0x000000000000000000000000000000000000dEaD"
OVERSIZE_BYTES = 256 * 1024
FLOOD_LINES = 200000
LONG_HEADER = 100 * 1024
TRICKLE_MAX_S = 3600  # header_trickle gives up on a client that never does


def iso(unix_s):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def canonical(q):
    """Bytes the quote key signs (independent host copy of the format documented in
    firmware/plug/rates_native.py)."""
    lines = [NATIVE_FORMAT, "chain_id=%d" % q["chain_id"], "currency=%s" % q["currency"].lower(),
             "decimals=%d" % q["decimals"], "issued=%d" % q["issued"]]
    lines += ["%d,%d,%s" % (iv["start"], iv["end"], iv["price"]) for iv in q["intervals"]]
    return ("\n".join(lines) + "\n").encode()


def sign_quote(q, key):
    from eth_account import Account
    from eth_account.messages import encode_defunct

    sig = Account.sign_message(encode_defunct(primitive=canonical(q)), key).signature
    return "0x" + bytes(sig).hex()


class TariffState:
    def __init__(self, schedule, fmt=None, misbehave=()):
        self.lock = threading.Lock()
        self.schedule = schedule
        self.format = fmt or schedule["provider"].get("format", "native")
        self.misbehave = set(misbehave)
        self.target = "all"
        self.delay_s = 30.0
        self.trickle_s = 1.0
        self.page_size = 100
        self.revise = False
        self.counts = {}

    def control(self, c):
        with self.lock:
            if "misbehave" in c:
                bad = [m for m in c["misbehave"] if m not in MISBEHAVIOURS]
                if bad:
                    raise ValueError("unknown misbehaviour %s" % bad)
                self.misbehave = set(c["misbehave"])
            for k in ("target", "delay_s", "trickle_s", "format", "schedule", "page_size",
                      "revise"):
                if k in c:
                    setattr(self, k, c[k])
            if self.format not in FORMATS:
                raise ValueError("unknown format %r" % self.format)

    def view(self):
        return {"misbehave": sorted(self.misbehave), "target": self.target, "format": self.format,
                "delay_s": self.delay_s, "trickle_s": self.trickle_s,
                "page_size": self.page_size, "revise": self.revise, "counts": self.counts}

    # ---- bodies ----

    def currency(self):
        return self.schedule["provider"]["currency"]

    def decimals(self):
        c = self.currency()
        return 18 if c == "native" else c["decimals"]

    def intervals(self, open_len=86400):
        out = []
        for iv in self.schedule["intervals"]:
            end = iv["end"] if iv["end"] is not None else iv["start"] + open_len
            out.append({"start": iv["start"], "end": end, "price": iv["price"],
                        "open": iv["end"] is None})
        return out

    def descriptor(self, base):
        p = self.schedule["provider"]
        d = {"name": p["name"], "payee": p["payee"], "chain_id": p["chain_id"],
             "currency": p["currency"],
             "rates": {"url": "%s/rates/%s" % (base, self.format), "format": self.format}}
        if self.revise:
            n = self.counts.get("/provider.json", 0)
            d["name"] = "%s #%d" % (p["name"], n)
            d["rates"]["url"] += "?rev=%d" % n
        if self.schedule.get("signer_key"):
            from eth_account import Account

            d["quote_signer"] = Account.from_key(self.schedule["signer_key"]).address
        m = self.active("provider")
        if "swapped_payee" in m:
            d["payee"] = ATTACKER
        if "wrong_chain" in m:
            d["chain_id"] = p["chain_id"] + 1
        if "wrong_token" in m:
            d["currency"] = {"address": ATTACKER, "decimals": 6, "symbol": "FAKE"}
        return d

    def active(self, target):
        return self.misbehave if self.target in ("all", target) else set()

    def _price_factor(self, m):
        return Decimal(1000) if "above_cap" in m else Decimal(1)

    def native(self):
        m = self.active("rates")
        cur = self.currency()
        f = self._price_factor(m)
        ivs = [{"start": iv["start"], "end": iv["end"], "price": str(Decimal(iv["price"]) * f)}
               for iv in self.intervals()]
        ivs = self._mangle(ivs, m)
        issued = self.schedule.get("issued") or int(time.time())
        if "replay_old" in m:
            issued = 1
        q = {"format": NATIVE_FORMAT, "chain_id": self.schedule["provider"]["chain_id"],
             "currency": "native" if cur == "native" else cur["address"],
             "decimals": self.decimals(), "issued": issued, "intervals": ivs}
        q["signature"] = sign_quote(q, self.schedule["signer_key"])
        if "bad_signature" in m:
            q["intervals"][0]["price"] = str(Decimal(q["intervals"][0]["price"]) / 2)
        if "wrong_types" in m:
            q["intervals"][0]["price"] = float(q["intervals"][0]["price"])
        return q

    def _mangle(self, ivs, m):
        if "overlap" in m and len(ivs) > 1:
            ivs[1] = dict(ivs[1], start=ivs[1]["start"] - 60)
        if "unsorted" in m and len(ivs) > 1:
            ivs = ivs[::-1]
        return ivs

    def octopus(self, base, query):
        m = self.active("rates")
        f = self._price_factor(m) * 100  # GBP/kWh -> pence/kWh
        rows = []
        for iv in self._mangle(self.intervals(), m):
            inc = (Decimal(iv["price"]) * f).quantize(Decimal("0.0001"))  # 4 decimals of pence
            exc = (inc / Decimal("1.05")).quantize(Decimal("0.0001"))
            rows.append({"value_exc_vat": float(exc),
                         "value_inc_vat": float(inc) if "wrong_types" not in m else str(inc),
                         "valid_from": iso(iv["start"]),
                         "valid_to": None if iv["open"] else iso(iv["end"]),
                         "payment_method": None})
        # newest first, as the API lists them ("unsorted": oldest first)
        rows.sort(key=lambda r: r["valid_from"], reverse="unsorted" not in m)
        size = int(query.get("page_size", [self.page_size])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = rows[(page - 1) * size: page * size]
        nxt = ("%s/rates/octopus?page=%d&page_size=%d" % (base, page + 1, size)
               if page * size < len(rows) else None)
        prev = ("%s/rates/octopus?page=%d&page_size=%d" % (base, page - 1, size)
                if page > 1 else None)
        return {"count": len(rows), "next": nxt, "previous": prev, "results": chunk}

    def _mwh(self, price, m):
        v = (Decimal(price) * 1000 * self._price_factor(m)).quantize(Decimal("0.01"))  # EUR/MWh
        return float(v) if "wrong_types" not in m else str(v)

    def awattar(self, query):
        m = self.active("rates")
        data = [{"start_timestamp": iv["start"] * 1000, "end_timestamp": iv["end"] * 1000,
                 "marketprice": self._mwh(iv["price"], m), "unit": "Eur/MWh"}
                for iv in self.intervals(3600)]
        if "start" in query:
            s = int(query["start"][0])
            data = [d for d in data if d["end_timestamp"] > s]
        if "overlap" in m and len(data) > 1:
            data[1]["start_timestamp"] = data[0]["end_timestamp"] - 60000
        if "unsorted" in m:
            data = data[::-1]
        return {"object": "list", "data": data, "url": "/de/v1/marketdata"}

    def energy_charts(self):
        m = self.active("rates")
        ivs = self.intervals(3600)
        step = min(iv["end"] - iv["start"] for iv in ivs)
        ts, ps = [], []
        t, end = ivs[0]["start"], max(iv["end"] for iv in ivs)
        while t < end:
            ts.append(t)
            p = None
            for iv in ivs:
                if iv["start"] <= t < iv["end"]:
                    p = self._mwh(iv["price"], m)
            ps.append(p)
            t += step
        if "unsorted" in m or "overlap" in m:
            ts = ts[::-1]
        return {"license_info": "CC BY 4.0 (creativecommons.org/licenses/by/4.0) from "
                                "Bundesnetzagentur | SMARD.de", "unix_seconds": ts, "price": ps,
                "unit": "EUR / MWh", "deprecated": False}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    state = None  # set per server

    def log_message(self, *a):
        pass

    def _send(self, code, body, ctype="application/json", declared=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def _json(self, obj, target):
        st = self.state
        m = st.active(target)
        body = json.dumps(obj).encode()
        if "slow" in m:
            time.sleep(st.delay_s)
        if "500" in m:
            return self._send(500, b'{"detail": "internal error"}')
        if "malformed" in m:
            return self._send(200, body[: len(body) // 2] + b"}{,]")
        if "oversize" in m:
            pad = b" " * OVERSIZE_BYTES
            return self._send(200, body[:-1] + pad + body[-1:])
        if "truncated" in m:
            return self._send(200, body[: len(body) // 2], declared=len(body))
        if "trickle" in m:
            return self._trickle(body, st.trickle_s)
        if "header_flood" in m:
            return self._flood(body)
        if "header_trickle" in m:
            return self._header_trickle(st.trickle_s)
        if "long_header" in m:
            return self._long_header(body)
        return self._send(200, body)

    def _trickle(self, body, pause_s):
        """A whole, valid reply: headers at once, then one body byte per pause_s."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(pause_s)
        except OSError:  # the client gave up
            pass

    def _flood(self, body):
        """A valid reply with FLOOD_LINES header lines, sent as fast as the client reads."""
        chunk = b"X-Junk: y\r\n" * 1000
        try:
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n")
            for _ in range(FLOOD_LINES // 1000):
                self.wfile.write(chunk)
            self.wfile.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:  # the client gave up
            pass

    def _header_trickle(self, pause_s):
        """The status line, then one header byte per pause_s; the line never ends."""
        try:
            self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
            self.wfile.flush()
            t = 0.0
            while t < TRICKLE_MAX_S:
                time.sleep(pause_s)
                t += pause_s
                self.wfile.write(b"a")
                self.wfile.flush()
        except OSError:  # the client gave up
            pass

    def _long_header(self, body):
        """A valid reply with one LONG_HEADER-byte header line before the others."""
        try:
            self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Long: " + b"a" * LONG_HEADER + b"\r\n"
                             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body)
        except OSError:  # the client gave up
            pass

    def do_GET(self):
        st = self.state
        u = urlparse(self.path)
        q = parse_qs(u.query)
        host = self.headers.get("Host") or self.server.server_address[0]
        if ":" not in host:  # MicroPython's requests sends the host without the port
            host = "%s:%d" % (host, self.server.server_address[1])
        base = "http://" + host
        with st.lock:
            st.counts[u.path] = st.counts.get(u.path, 0) + 1
        try:
            if u.path == "/_control":
                return self._send(200, json.dumps(st.view()).encode())
            if u.path == "/provider.json":
                return self._json(st.descriptor(base), "provider")
            if u.path == "/rates/native":
                return self._json(st.native(), "rates")
            if u.path == "/rates/octopus":
                return self._json(st.octopus(base, q), "rates")
            if u.path == "/rates/awattar":
                return self._json(st.awattar(q), "rates")
            if u.path == "/rates/energy-charts":
                return self._json(st.energy_charts(), "rates")
        except (KeyError, ValueError) as e:
            return self._send(400, json.dumps({"error": str(e)}).encode())
        self._send(404, b'{"error": "not found"}')

    def do_POST(self):
        if urlparse(self.path).path != "/_control":
            return self._send(404, b'{"error": "not found"}')
        n = int(self.headers.get("Content-Length") or 0)
        try:
            self.state.control(json.loads(self.rfile.read(n) or b"{}"))
        except (ValueError, TypeError) as e:
            return self._send(400, json.dumps({"error": str(e)}).encode())
        self._send(200, json.dumps(self.state.view()).encode())


class TariffServer:
    """A running server: `with TariffServer(schedule) as ts: ts.url, ts.control({...})`."""

    def __init__(self, schedule, host="127.0.0.1", port=0, fmt=None, misbehave=()):
        self.state = TariffState(schedule, fmt, misbehave)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.url = "http://%s:%d" % (self.host, self.port)
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def control(self, **c):
        self.state.control(c)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="plugctl tariff-server", description="Serve a provider descriptor and its rates "
        "in every format the plug reads (GET /provider.json, /rates/...), from a schedule file.")
    ap.add_argument("--schedule", required=True, metavar="FILE",
                    help="schedule JSON: provider, quote key and priced intervals "
                         "(e.g. tests/data/tariff_schedule_open.json)")
    ap.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--format", choices=FORMATS,
                    help="rates format to serve (default: the schedule's, else native)")
    ap.add_argument("--misbehave", default="", metavar="LIST",
                    help="comma list of faults to play, for tests: " + ", ".join(MISBEHAVIOURS))
    a = ap.parse_args(argv)
    try:
        with open(a.schedule) as f:
            schedule = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit("plugctl tariff-server: schedule %s: %s" % (a.schedule, e))
    mis = [m for m in a.misbehave.split(",") if m]
    bad = [m for m in mis if m not in MISBEHAVIOURS]
    if bad:
        raise SystemExit("plugctl tariff-server: --misbehave %s: unknown; known: %s"
                         % (",".join(bad), ", ".join(MISBEHAVIOURS)))
    try:
        srv = TariffServer(schedule, a.host, a.port, a.format, mis)
    except (KeyError, TypeError, AttributeError) as e:
        raise SystemExit("plugctl tariff-server: schedule %s: missing or wrong %s"
                         % (a.schedule, e))
    except OSError as e:  # EADDRINUSE: "Address already in use"
        raise SystemExit("plugctl tariff-server: cannot listen on %s:%d (%s): stop what holds "
                         "the port, or pick another --port" % (a.host, a.port, e.strerror or e))
    print("tariff server on %s (format %s)" % (srv.url, srv.state.format), flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()


if __name__ == "__main__":
    main()
