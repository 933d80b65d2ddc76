"""Slow clients against an HTTP server, for the plug's LAN API checks (the tests and the
slowloris phase of `make faults`).

    with Slowloris("127.0.0.1", port, clients=4, period_s=0.3) as atk:
        fig = probe("http://127.0.0.1:%d" % port, "/status", seconds=10)
    atk.stats  # {"connections": n, "cut": n, "bytes": n}

Each attacking client opens a connection, sends a request line and then one header line
every `period_s`, never ending the head. When the server closes the connection (a 408,
an eviction, a 503) the client sees it at once and reconnects, as a real slowloris does.
`idle` more clients connect and send nothing at all.
"""

import select
import socket
import threading
import time
import urllib.error
import urllib.request


class Slowloris:
    def __init__(self, host, port, clients=4, period_s=0.3, idle=0):
        self.addr = (host, port)
        self.period_s = period_s
        self.stats = {"connections": 0, "cut": 0, "bytes": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i, i >= clients),
                                          daemon=True) for i in range(clients + idle)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _count(self, key, n=1):
        with self._lock:
            self.stats[key] += n

    def _client(self, i, idle):
        while not self._stop.is_set():
            try:
                s = socket.create_connection(self.addr, timeout=5)
            except OSError:
                time.sleep(0.05)
                continue
            self._count("connections")
            try:
                if not idle:
                    self._send(s, b"GET /status HTTP/1.1\r\nHost: plug\r\n")
                n = 0
                while not self._stop.is_set():
                    r, _, _ = select.select([s], [], [], self.period_s)
                    if r:  # an answer (408, 503) or the close: cut off
                        s.recv(4096)
                        self._count("cut")
                        break
                    if not idle:
                        n += 1
                        self._send(s, b"X-Slow-%d: %d\r\n" % (i, n))
            except OSError:
                self._count("cut")
            finally:
                s.close()

    def _send(self, s, data):
        s.sendall(data)
        self._count("bytes", len(data))


def get(url, timeout=10):
    """(status, body) of a GET; status None when the connection failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, body
    except OSError:
        return None, b""


def probe(url, seconds, interval_s=0.25, timeout=10):
    """GET `url` every `interval_s` for `seconds`: {"probes", "answered" (200), "busy"
    (503), "other", "worst_s"} (worst_s: the slowest answer), and "other_answers" (status
    and the start of the body of each other answer) if there were any."""
    fig = {"probes": 0, "answered": 0, "busy": 0, "other": 0, "worst_s": 0.0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        code, body = get(url, timeout)
        took = time.monotonic() - t0
        fig["probes"] += 1
        if code == 200:
            fig["answered"] += 1
            fig["worst_s"] = max(fig["worst_s"], round(took, 3))
        elif code == 503:
            fig["busy"] += 1
        else:
            fig["other"] += 1
            fig.setdefault("other_answers", []).append((code, body[:60]))
        time.sleep(interval_s)
    return fig
