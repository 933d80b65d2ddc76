"""A virtual plug: the firmware on the MicroPython unix port with its serial on a pty.

    python -m tools.vplug --state DIR --serial /tmp/plug-tty [--main SCRIPT] [--heap 64k]

runs one until Ctrl-C. From Python:

    vp = VirtualPlug("/tmp/plug1", main_script="tests/repl_main.py", serial_link="/tmp/tty1")
    vp.start()
    vp.expect(">>> ")                  # read the screen, like a person at a terminal
    print(vp.command("1 + 1"))         # type a line, get its output ("2")
    vp.mpremote("exec", "print(3)")    # real mpremote over the pty ("resume" is added)
    vp.kill()                          # SIGKILL: a power cut
    vp.start()                         # boot again on the same flash (state_dir)

The process runs tools/vplug_boot.py (the board's "ROM"): it runs `main_script` (or,
without one, boot.py/main.py from the flash) and then the serial REPL, as a board drops
to the REPL when main.py ends. `args` become sys.argv[1:]. Unless `path_dirs` is given,
the device code comes from build/unix/ (.mpy, rebuilt when stale), with the flash and
its lib/ first on sys.path as on the ESP32.

The process's stdin is the MASTER side of a pty; the slave side is what a host opens
(pyserial, mpremote), linked at `serial_link`. The slave is set raw (no echo, no line
discipline), like a USB serial port. Its stdout/stderr reach the master through
tools/vplug_serial.py, which sends "\n" as "\r\n" as an ESP32's UART does and shows a
terminal that opens the port the prompt at once. The working directory is `state_dir`, the
plug's flash. This object keeps a slave fd open, so the plug never sees a hang-up when
clients come and go, and a thread drains output that nobody reads once more than
`backlog` bytes wait, so the plug never blocks on a full pty (a UART drops bytes too).
It never reads while another process holds the port's exclusive lock (pyserial and
mpremote take one).

The board's hardware watchdog is played here too: the plug's process gets a heartbeat
file (VPLUG_WDT, outside the flash) that boards/board_sim.py's watchdog rewrites at every
feed() (its text: the timeout in ms). Once it has been armed, a feed missing for longer
than the timeout makes this object SIGKILL the process, as the chip resets; the next
start() tells the plug with VPLUG_RESET_CAUSE=watchdog (board.watchdog_reset()), else
"power_on" (the first boot, a kill()) or "reset" (the process ended by itself).
`watchdog_resets` counts them; `last_reset` is the cause the running boot was given.
"""

import argparse
import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty

from . import mp
from .paths import BUILD, DEVICE_DIRS, ROOT, executable
from .vplug_serial import SerialLink

BOOT = os.path.join(ROOT, "tools", "vplug_boot.py")
_SCREEN_MAX = 1 << 20  # bytes of screen history kept


class VirtualPlugError(Exception):
    pass


def _die_with_parent():
    # A plug whose runner died (test killed, Ctrl-C) must not live on as an orphan that
    # meters and spins forever: the kernel SIGKILLs it when the thread that started it
    # ends (so call start() from a thread that lives as long as the plug should).
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class VirtualPlug:
    def __init__(self, state_dir, main_script=None, heap=mp.DEFAULT_HEAP, env=None,
                 serial_link=None, path_dirs=None, args=(), flash_on_path=True,
                 backlog=2048):
        self.state_dir = os.path.abspath(state_dir)
        self.main_script = os.path.abspath(main_script) if main_script else None
        self.heap = heap
        self.extra_env = dict(env or {})
        self.serial_link = os.path.abspath(serial_link) if serial_link else None
        self.path_dirs = None if path_dirs is None else tuple(path_dirs)
        self.args = tuple(args)
        self.flash_on_path = flash_on_path
        self.backlog = backlog
        self.slave_name = None
        self.boots = 0
        self.watchdog_resets = 0
        self.last_reset = None
        self._ended = "power_on"  # how the last boot ended: the next one's reset cause
        self._wdt_path = None
        self._stop_watch = None
        self._proc = None
        self._keep = None  # our slave fd: keeps the pty up and is what the drain reads
        self._con = None  # the console's own fd for typing, as a second client would
        self._link = None  # the plug's output -> the pty master (vplug_serial.SerialLink)
        self._attached = False
        self._screen = bytearray()
        self._mark = 0
        self._cond = threading.Condition()
        self._thread = None
        self._stop_drain = None

    # -- lifecycle ------------------------------------------------------------

    @property
    def port(self):
        """What to give mpremote/pyserial: the link if there is one, else the pty."""
        return self.serial_link or self.slave_name

    @property
    def alive(self):
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    @property
    def returncode(self):
        return self._proc.poll() if self._proc else None

    def _device_dirs(self):
        """The plug runs .mpy, as on the ESP32 (64 KB cannot compile the app from source):
        unless path_dirs is given, build/unix/ is brought up to date and used."""
        if self.path_dirs is None:
            from . import build_mpy

            try:
                build_mpy.build("unix")
            except SystemExit as e:
                raise VirtualPlugError(str(e))
            self.path_dirs = tuple(os.path.join(BUILD, "unix", os.path.basename(d))
                                   for d in DEVICE_DIRS)
        return self.path_dirs

    def env(self):
        e = mp.env(self._device_dirs(), self.extra_env)
        # The first entry becomes the boot script's directory; the ROM puts the flash there.
        flash = ["", "lib"] if self.flash_on_path else [""]
        e["MICROPYPATH"] = ":".join(flash + list(self.path_dirs) + [".frozen"])
        if self.main_script:
            e["VPLUG_MAIN"] = self.main_script
        if self._wdt_path:
            e["VPLUG_WDT"] = self._wdt_path
        e["VPLUG_RESET_CAUSE"] = self._ended
        return e

    def start(self):
        if self.alive:
            raise VirtualPlugError("virtual plug already running (pid %d)" % self.pid)
        self._close_pty()
        os.makedirs(self.state_dir, exist_ok=True)
        fd, self._wdt_path = tempfile.mkstemp(prefix="vplug-wdt-")  # empty: not armed
        os.close(fd)
        env = self.env()
        master, slave = pty.openpty()
        tty.setraw(slave)  # a serial port: no echo, no CR/NL mapping, no signals
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self._keep = slave
        self.slave_name = os.ttyname(slave)
        argv = [executable("micropython"), "-X", "heapsize=" + self.heap, BOOT]
        # a local name: a kill() from another thread may clear self._link meanwhile
        link = self._link = SerialLink(master, self.slave_name)
        try:
            self._proc = subprocess.Popen(argv + list(self.args), stdin=master,
                                          stdout=link.out_fd, stderr=link.out_fd,
                                          cwd=self.state_dir, env=env,
                                          start_new_session=True, close_fds=True,
                                          preexec_fn=_die_with_parent)
        except BaseException:
            self._close_pty()
            raise
        link.start()
        self.boots += 1
        self.last_reset, self._ended = self._ended, "reset"
        self._stop_watch = threading.Event()
        threading.Thread(target=self._watchdog, daemon=True, name="vplug-wdt",
                         args=(self._proc, self._wdt_path, self._stop_watch)).start()
        if self.serial_link:
            tmp = self.serial_link + ".tmp%d" % os.getpid()
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.symlink(self.slave_name, tmp)
            os.replace(tmp, self.serial_link)
        self._stop_drain = threading.Event()
        self._thread = threading.Thread(target=self._drain, args=(slave, self._stop_drain),
                                        daemon=True, name="vplug-drain")
        self._thread.start()
        return self

    def kill(self):
        """SIGKILL the plug: a power cut. The flash (state_dir) keeps what was written."""
        if self.alive:
            self._proc.kill()
            self._ended = "power_on"
        self._reap()

    def stop(self, timeout=5.0):
        """Stop cleanly: SIGINT raises KeyboardInterrupt in the app, which may checkpoint
        and should let it propagate (the process then ends); SIGKILL after `timeout`
        seconds. Returns the exit status."""
        if self.alive:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap()
        return self.returncode

    def heard_count(self):
        """A mark in the plug's serial output (see heard_since)."""
        link = self._link
        return link.heard_count() if link is not None else 0

    def heard_since(self, mark):
        """The plug's serial output after `mark` as text, even when another program reads
        the port (the screen only has what this object read)."""
        link = self._link
        return link.heard_since(mark).decode("utf-8", "replace") if link is not None else ""

    def restart(self, kill=True):
        """Power-cut (kill=True) or stop, then boot again on the same flash."""
        self.kill() if kill else self.stop()
        return self.start()

    def _reap(self):
        if self._proc is not None:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_pty()

    def _watchdog(self, proc, path, stopped):
        # the board's watchdog: SIGKILL once an armed heartbeat file goes stale
        while not stopped.wait(0.2) and proc.poll() is None:
            try:
                last = os.stat(path).st_mtime
                with open(path, "rb") as f:
                    timeout = int(f.read().split()[0]) / 1000.0
            except (OSError, ValueError, IndexError):  # not armed yet, or gone
                continue
            if time.time() - last > timeout and proc.poll() is None:
                self._ended = "watchdog"
                self.watchdog_resets += 1
                proc.kill()
                return

    def _close_pty(self):
        if self._stop_watch is not None:
            self._stop_watch.set()
            self._stop_watch = None
        if self._wdt_path is not None:
            try:
                os.remove(self._wdt_path)
            except OSError:
                pass
            self._wdt_path = None
        if self._stop_drain is not None:
            self._stop_drain.set()
            self._thread.join(2)
            self._stop_drain = None
        if self._link is not None:
            self._link.close()
            self._link = None
        for attr in ("_con", "_keep"):
            fd = getattr(self, attr)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, attr, None)
        self._attached = False
        if self.serial_link and os.path.islink(self.serial_link):
            try:  # the supervisor thread may have relinked or removed it meanwhile
                if os.readlink(self.serial_link) == self.slave_name:
                    os.remove(self.serial_link)
            except OSError:
                pass

    def __enter__(self):
        return self.start() if not self.alive else self

    def __exit__(self, *exc):
        self.stop(timeout=2)

    # -- output drain -----------------------------------------------------------

    def _drain(self, fd, stopped):
        buf = bytearray(4)
        while not stopped.is_set():
            if self._attached:
                r, _, _ = select.select([fd], [], [], 0.05)
                if r and not self._read_into_screen(fd, 65536):
                    return
                continue
            stopped.wait(0.02)
            try:
                fcntl.ioctl(fd, termios.FIONREAD, buf)
            except OSError:  # the plug is gone
                return
            waiting = int.from_bytes(buf, "little")
            if waiting < self.backlog:
                continue
            try:  # someone holds the port (mpremote, pyserial): their bytes, leave them
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            try:
                if not self._read_into_screen(fd, waiting):
                    return
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _read_into_screen(self, fd, n):
        try:
            data = os.read(fd, n)
        except OSError:  # EIO: the plug process is gone
            data = b""
        with self._cond:
            if data:
                self._screen += data
                if len(self._screen) > _SCREEN_MAX:
                    cut = len(self._screen) - _SCREEN_MAX // 2
                    del self._screen[:cut]
                    self._mark = max(0, self._mark - cut)
            self._cond.notify_all()
        return bool(data)

    # -- console: type at the REPL and read the screen ------------------------------

    def attach(self):
        """Become the reader of the serial (as a terminal would). Detach before other
        programs (mpremote) use the port."""
        if self.slave_name is None:
            raise VirtualPlugError("virtual plug not started")
        if self._con is None:
            if self._link is not None:
                self._link.ignore_open()  # the console is not a terminal arriving
            self._con = os.open(self.slave_name, os.O_RDWR | os.O_NOCTTY)
        self._attached = True

    def detach(self):
        self._attached = False
        time.sleep(0.06)  # let the drain thread finish a select in progress

    @property
    def screen(self):
        """Everything read from the serial so far (text, newest at the end)."""
        with self._cond:
            return self._screen.decode("utf-8", "replace")

    def send(self, data):
        """Type bytes or text at the serial, as a host would."""
        self.attach()
        if isinstance(data, str):
            data = data.encode()
        while data:
            n = os.write(self._con, data)
            data = data[n:]

    def expect(self, pattern, timeout=10.0):
        """Wait until `pattern` (text or compiled regex) appears after the last match;
        return the screen text up to and including it."""
        self.attach()
        if isinstance(pattern, str):
            pattern = re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        dead_at = None
        with self._cond:
            while True:
                text = self._screen[self._mark:].decode("utf-8", "surrogateescape")
                m = pattern.search(text)
                if m:
                    self._mark += len(text[:m.end()].encode("utf-8", "surrogateescape"))
                    return text[:m.end()]
                left = deadline - time.monotonic()
                if not self.alive and dead_at is None:
                    dead_at = time.monotonic()
                if left <= 0 or (dead_at is not None and time.monotonic() - dead_at > 0.5):
                    raise TimeoutError("no %r on the plug's serial within %.1f s; screen ends "
                                       "with:\n%s" % (pattern.pattern, timeout, text[-2000:]))
                self._cond.wait(min(left, 0.1))

    def settle(self, quiet=0.2, timeout=10.0):
        """Wait until the plug has been silent for `quiet` seconds and skip what it printed."""
        self.attach()
        deadline = time.monotonic() + timeout
        with self._cond:
            while time.monotonic() < deadline:
                n = len(self._screen)
                self._cond.wait(quiet)
                if len(self._screen) == n:
                    break
            self._mark = len(self._screen)

    def reset_prompt(self, timeout=10.0):
        """Get to an empty friendly prompt from any state (raw mode, half-typed line)."""
        self.send(b"\x03\x02")
        self.settle()
        self.send(b"\r")
        self.expect(re.compile(r">>> $"), timeout)

    def command(self, source, timeout=10.0, prompt=">>> "):
        """Type `source` at the friendly prompt (several lines for a block) and return what
        it printed, without the echo and the prompts, with newlines normalised."""
        lines = source.split("\n")
        block = lines[0].rstrip().endswith(":") or lines[0].lstrip().startswith("@")
        if block and lines[-1].strip():
            lines.append("")  # a blank line ends a block, as at the real prompt
        self.attach()
        with self._cond:  # what is on screen already is not this command's answer
            self._mark = len(self._screen)
        for line in lines:
            self.send(line + "\r")
        self.expect(lines[0] + "\r\n", timeout)  # the echo
        # the prompt ends the answer; a log line may already have redrawn it ("\r\x1b[K")
        text = self.expect(re.compile(r"(?:^|\n)" + re.escape(prompt) + r"(?=$|\r)"), timeout)
        out = text.replace("\r\n", "\n").split("\n")[:-1]
        return "\n".join(out[len(lines) - 1:])

    # -- mpremote -------------------------------------------------------------------

    def mpremote(self, *args, timeout=60, resume=True, check=True):
        """Run the real mpremote against this plug's serial; returns CompletedProcess."""
        self.detach()
        argv = [executable("mpremote"), "connect", self.port] + (["resume"] if resume else [])
        r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise VirtualPlugError("mpremote %s failed (%d):\n%s%s"
                                   % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True, help="the plug's flash (a directory)")
    ap.add_argument("--serial", required=True, help="path to link the serial pty at")
    ap.add_argument("--main", default=None, help="script to boot (default: the virtual ROM)")
    ap.add_argument("--heap", default=mp.DEFAULT_HEAP)
    a = ap.parse_args(argv)
    vp = VirtualPlug(a.state, main_script=a.main, heap=a.heap, serial_link=a.serial).start()
    print("virtual plug pid %d, serial %s -> %s" % (vp.pid, vp.serial_link, vp.slave_name))
    try:
        while vp.alive:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        vp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
