"""Run code under the MicroPython unix port, as the plug would run it."""

import os
import subprocess

from .paths import DEVICE_DIRS, ROOT, executable, micropypath

DEFAULT_HEAP = "64k"


class MicroPythonError(AssertionError):
    """MicroPython exited with an error; the message carries its traceback."""


def command(heap=DEFAULT_HEAP, extra=()):
    return [executable("micropython"), "-X", "heapsize=" + heap] + list(extra)


def env(path_dirs=DEVICE_DIRS, extra_env=None):
    e = dict(os.environ)
    e["MICROPYPATH"] = micropypath(path_dirs)
    if extra_env:
        e.update(extra_env)
    return e


def run(code=None, path=None, args=(), heap=DEFAULT_HEAP, timeout=300, path_dirs=DEVICE_DIRS,
        extra_env=None, cwd=ROOT, check=True, input=None):
    """Run a snippet (`code`) or a file (`path`) and return its stdout.

    With check=True a non-zero exit or a traceback raises MicroPythonError with
    MicroPython's own output, so a failing device-side assertion reads like one.
    """
    if (code is None) == (path is None):
        raise ValueError("give exactly one of code or path")
    argv = command(heap) + (["-c", code] if code is not None else [path]) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=env(path_dirs, extra_env), cwd=cwd, input=input)
    if check and (r.returncode != 0 or _TRACEBACK in r.stderr):
        # the unix port prints an uncaught exception on stdout; asyncio's "Task
        # exception wasn't retrieved" goes to stderr with exit status 0
        exc = (_exception(r.stdout) if r.returncode else "") or _exception(r.stderr)
        raise MicroPythonError(
            "MicroPython exited %d: %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
            % (r.returncode, exc or "(no traceback)", r.stdout[-8000:], r.stderr[-8000:])
        )
    return r.stdout if check else r


_TRACEBACK = "Traceback (most recent call last)"


def _exception(text):
    """The exception line of the last traceback in text ("ValueError: boom")."""
    i = text.rfind(_TRACEBACK)
    if i < 0:
        return ""
    lines = text[i:].splitlines()[1:]
    while lines and lines[0].startswith(" "):
        lines.pop(0)
    return lines[0] if lines else ""
