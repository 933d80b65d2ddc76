"""plugctl repl --port PORT: the plug's serial REPL at this terminal, kept across resets.

Built from mpremote's pieces (its serial transport, console and REPL loop, no soft
reset, Ctrl-] or Ctrl-x leaves), but unlike `mpremote repl` the session survives the
plug going away: plug.reboot(), reset(), a watchdog or a power cut closes the port (on
the virtual plug its pty goes; `plugctl sim` links the new one at the same --serial
path as it boots the plug again; a USB board re-enumerates). That is one line,
"plug reset; reconnecting...", and the REPL comes back when the port does, as a real
board's serial terminal shows the board booting again. If the port has not come back
after --wait seconds (RECONNECT_S): one line saying so, exit status 1. Never a traceback.
"""

import argparse
import os
import sys
import time

RECONNECT_S = 30  # a board boots in a few seconds; the virtual plug's supervisor in < 1 s


class _State:  # what mpremote's REPL loop asks of its state
    def __init__(self, transport):
        self.transport = transport


def _connect(port):
    from mpremote.transport_serial import SerialTransport

    return SerialTransport(port, baudrate=115200)


def _close(t):
    try:
        t.close()
    except OSError:  # the port is already gone: nothing to release
        try:
            t.serial.close()
        except OSError:
            pass


def _reconnect(port, log, wait=None):
    """The transport once `port` opens again, or None after `wait` seconds."""
    from mpremote.transport import TransportError

    deadline = time.monotonic() + (RECONNECT_S if wait is None else wait)
    time.sleep(0.3)  # the old port may still be there for a moment
    while time.monotonic() < deadline:
        if os.path.exists(port):
            try:
                return _connect(port)
            except (OSError, TransportError):
                pass
        time.sleep(0.2)
    return None


def session(port, log=None, wait=RECONNECT_S):
    """Run the REPL until the user leaves (0) or the port does not come back within
    `wait` seconds (1)."""
    from mpremote.console import Console
    from mpremote.repl import do_repl_main_loop

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    t = _connect(port)
    print("Connected to MicroPython at %s" % port)
    print("Use Ctrl-] or Ctrl-x to exit this shell")
    while True:
        console = Console()
        console.enter()
        try:
            gone = do_repl_main_loop(_State(t), console, console.write,
                                     escape_non_printable=False, code_to_inject=None,
                                     file_to_inject=None)
        except OSError:  # pyserial's SerialException is one: the port failed under us
            gone = True
        finally:
            console.exit()
            _close(t)
        if not gone:
            return 0
        log("\r\nplug reset; reconnecting...")
        t = _reconnect(port, log, wait)
        if t is None:
            log("plugctl repl: %s did not come back within %g s: is the plug powered, or "
                "`plugctl sim` still running?" % (port, wait))
            return 1
        log("reconnected to %s" % port)


def main(argv):
    from .deploy import DeployError, check_port

    ap = argparse.ArgumentParser(prog="plugctl repl", description=(
        "Open a plug's serial REPL (no soft reset; Ctrl-] leaves). The session survives "
        "the plug resetting: it reconnects when the port comes back."))
    ap.add_argument("--port", required=True,
                    help="serial port (/dev/ttyUSB0) or a virtual plug's --serial link")
    ap.add_argument("--wait", type=float, default=RECONNECT_S, metavar="S",
                    help="after a reset, wait this long for the port to come back "
                         "(default %d s)" % RECONNECT_S)
    a = ap.parse_args(argv)
    try:
        check_port(a.port)
    except DeployError as e:
        raise SystemExit("plugctl repl: %s" % e)
    if not sys.stdin.isatty():
        raise SystemExit("plugctl repl: needs a terminal (its input is not one); for "
                         "scripts use `mpremote connect %s resume exec ...`" % a.port)
    from mpremote.transport import TransportError

    try:
        return session(a.port, wait=a.wait)
    except TransportError as e:
        raise SystemExit("plugctl repl: %s: %s" % (a.port, e))
