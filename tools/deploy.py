"""Put the firmware on a plug with mpremote, and open its REPL.

    plugctl deploy --port PORT --board NAME [--ca CERTS.pem] [--no-reset]
    plugctl repl --port PORT

The plug's flash gets: main.py, board.mpy (boards/board_NAME.py), lib/ (the libraries,
and for the virtual plug its simulated hardware, boards/sim/), plug/ (the app), www/ (the
page at /, index.html.gz as tools/build_mpy gzipped it). All
of it is compiled by mpy-cross first: for the ESP32 (xtensawin) on a real board, for
x64 on the virtual plug. `--ca` adds ca.der: the CA certificates (PEM or DER) that the
plug checks https servers against (without it the plug refuses https URLs). Works
against a USB serial port and a virtual plug's pty; every mpremote call uses `resume`, so
a running plug is not soft-reset mid-copy.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import shutil

from . import build_mpy
from .paths import BUILD, FIRMWARE, executable

VIRTUAL_BOARDS = ("sim",)


class DeployError(RuntimeError):
    pass


def check_port(port):
    """DeployError unless `port` (a device path) exists: mpremote's own message for a
    missing port blames another program holding it."""
    if port.startswith("/") and not os.path.exists(port):
        raise DeployError("no serial port at %s: is the plug connected, or `plugctl sim "
                          "--serial %s` running?" % (port, port))


def mpremote(port, *args, capture=False, timeout=300, resume=True):
    check_port(port)
    argv = [executable("mpremote"), "connect", port] + (["resume"] if resume else []) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise DeployError("mpremote %s failed (%d): %s%s" % (" ".join(args[:2]), r.returncode,
                                                            r.stdout[-2000:], r.stderr[-2000:]))
    return r.stdout if capture else sys.stdout.write(r.stdout)


def ca_der(path):
    """The certificates of a PEM or DER file as the plug's ca.der (DER, one after another),
    checked with the plug's own reader."""
    import re
    import ssl

    with open(path, "rb") as f:
        data = f.read()
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
    if blocks:
        data = b"".join(ssl.PEM_cert_to_DER_cert(b.decode("ascii")) for b in blocks)
    if FIRMWARE not in sys.path:
        sys.path.append(FIRMWARE)
    from plug.tls_ca import MAX_CA_BYTES, der_certs

    try:
        certs = der_certs(data)
        if not certs:
            raise ValueError("empty")
        for der in certs:  # an X.509 certificate, not just DER framing
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=der)
    except (ValueError, ssl.SSLError) as e:
        raise DeployError("%s: no certificates (%s)" % (path, e))
    if len(data) > MAX_CA_BYTES:
        raise DeployError("%s: %d bytes of certificates, the plug takes %d: keep only the "
                          "roots your servers need" % (path, len(data), MAX_CA_BYTES))
    return data


def stage(board, ca=None):
    """A directory laid out exactly as the plug's flash should be."""
    target = "unix" if board in VIRTUAL_BOARDS else "esp32"
    build_mpy.build(target)
    src = os.path.join(BUILD, target)
    board_mpy = os.path.join(src, "boards", "board_%s.mpy" % board)
    if not os.path.exists(board_mpy):
        names = sorted(n[6:-4] for n in os.listdir(os.path.join(src, "boards"))
                       if n.startswith("board_"))
        raise SystemExit("plugctl deploy: no board %r; boards: %s" % (board, ", ".join(names)))
    out = tempfile.mkdtemp(prefix="plug-flash-")
    shutil.copytree(os.path.join(src, "lib"), os.path.join(out, "lib"))
    shutil.copytree(os.path.join(src, "firmware", "plug"), os.path.join(out, "plug"))
    shutil.copy(os.path.join(FIRMWARE, "main.py"), os.path.join(out, "main.py"))
    shutil.copy(board_mpy, os.path.join(out, "board.mpy"))
    shutil.copytree(os.path.join(src, "firmware", "www"), os.path.join(out, "www"),  # the page
                    ignore=lambda d, names: [n for n in names if not n.endswith(".gz")])
    if board in VIRTUAL_BOARDS:
        shutil.copytree(os.path.join(src, "boards", "sim"), os.path.join(out, "lib", "sim"))
    if ca:
        with open(os.path.join(out, "ca.der"), "wb") as f:
            f.write(ca_der(ca))
    return out


def deploy(port, board, reset=True, log=print, chunk=2048, ca=None):
    """Copy the staged flash to the plug over its serial REPL with mpremote's transport
    (raw REPL, no soft reset), in chunks the plug's heap can take."""
    from mpremote.transport_serial import SerialTransport

    check_port(port)
    flash = stage(board, ca)
    try:
        files = [(d, f) for d, _, fs in sorted(os.walk(flash)) for f in sorted(fs)]
        size = sum(os.path.getsize(os.path.join(d, f)) for d, f in files)
        log("deploy: %d files, %d bytes to %s" % (len(files), size, port))
        t = SerialTransport(port, baudrate=115200)
        try:
            t.enter_raw_repl(soft_reset=False)
            for d, _dirs, _files in sorted(os.walk(flash)):
                rel = os.path.relpath(d, flash).replace(os.sep, "/")
                if rel != "." and not t.fs_exists(rel):
                    t.fs_mkdir(rel)
            for d, f in files:
                rel = os.path.relpath(os.path.join(d, f), flash).replace(os.sep, "/")
                with open(os.path.join(d, f), "rb") as fh:
                    t.fs_writefile(rel, fh.read(), chunk_size=chunk)
            if t.fs_exists("slot.json"):  # the plug ran a release sent over the air
                t.fs_rmfile("slot.json")  # (plug/slots.py): boot what was just copied
            t.exit_raw_repl()
        finally:
            t.close()
        if reset:
            reset_plug(port)
        log("deploy: done%s" % (", plug restarting" if reset else ""))
    finally:
        shutil.rmtree(flash, ignore_errors=True)


# A running app restarts through plug.reboot() (it checkpoints first); a board with
# nothing running through machine.reset(), or on the virtual plug through its ROM's
# reset() (the unix port has no machine.reset()).
_RESET = """
try:
    plug.reboot()
except NameError:
    try:
        reset()
    except NameError:
        import machine
        machine.reset()
"""


def reset_plug(port):
    """Restart the plug; the connection drops as it goes, so mpremote's exit is ignored."""
    subprocess.run([executable("mpremote"), "connect", port, "resume", "exec", _RESET],
                   capture_output=True, timeout=30)


def boards():
    """The board names in boards/ (board_<name>.py)."""
    from .paths import BOARDS

    return sorted(n[6:-3] for n in os.listdir(BOARDS)
                  if n.startswith("board_") and n.endswith(".py"))


def cli(cmd, argv):
    desc = ("Compile the firmware with mpy-cross and copy it to a plug over its serial "
            "port, then restart the plug." if cmd == "deploy" else
            "Open a plug's serial REPL (mpremote, no soft reset; Ctrl-] leaves).")
    ap = argparse.ArgumentParser(prog="plugctl " + cmd, description=desc)
    ap.add_argument("--port", required=True,
                    help="serial port (/dev/ttyUSB0) or a virtual plug's --serial link")
    if cmd == "deploy":
        names = boards()
        ap.add_argument("--board", required=True, choices=names, metavar="NAME",
                        help="the board module to install: %s (sim: the virtual plug)"
                             % ", ".join(names))
        ap.add_argument("--no-reset", action="store_true",
                        help="do not restart the plug after copying")
        ap.add_argument("--ca", metavar="CERTS.pem",
                        help="CA certificates (PEM or DER) the plug checks https servers "
                             "against; without it the plug refuses https URLs")
    a = ap.parse_args(argv)
    if cmd == "repl":  # plugctl dispatches repl to tools/serial_repl.py (it reconnects)
        from . import serial_repl

        return serial_repl.main(argv)
    try:
        deploy(a.port, a.board, reset=not a.no_reset, ca=a.ca)
    except DeployError as e:
        raise SystemExit("plugctl deploy: %s" % e)
    return 0
