"""Host helpers for the config tests: run batches of cases through tests/config_probe.py
on the MicroPython unix port (one process per batch, heap capped as on the plug)."""

import json
import os

from tools import mp

TESTS = os.path.dirname(os.path.abspath(__file__))


def probe(cases, heap=mp.DEFAULT_HEAP, timeout=300, ascii_only=False):
    """Answers of the plug's config module to `cases` (see config_probe.py), in order.
    Cases go as UTF-8 JSON lines, or with ascii_only as \\u-escaped ASCII (as
    json.dumps sends them by default: astral characters as surrogate pairs)."""
    lines = "".join(json.dumps(c, ensure_ascii=ascii_only) + "\n" for c in cases)
    from paytest import build_dir  # the plug runs .mpy, not source it must compile first

    out = mp.run(path=os.path.join(TESTS, "config_probe.py"), heap=heap, timeout=timeout,
                 input=lines, path_dirs=build_dir())
    answers = [json.loads(x) for x in out.splitlines() if x.strip()]
    if len(answers) != len(cases):
        raise AssertionError("%d answers to %d cases:\n%s"
                             % (len(answers), len(cases), out[-3000:]))
    return answers


def cpython_canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
