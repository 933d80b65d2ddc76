"""Heap cost of each deployed module, as the plug loads it: `.mpy` read from its flash
(the bytecode is copied into the heap) or from a ROMFS image (bytecode executes in
place, as on an ESP32 with a romfs partition or with frozen modules).

One MicroPython unix-port process per way of loading, working directory the staged
flash (tools/deploy.stage), imports every module; `builtins.__import__` is wrapped so that
each first-time import is measured with gc.collect() + gc.mem_alloc() before and after,
and what nested imports cost is taken off the importer, as a profiler splits inclusive
from own time. So "own" is what a module adds by itself (its code, qstrs, globals,
classes, whatever it builds at import) and "with deps" what `import X` costs in a fresh
process (own + everything it imports at its top). Lazy imports inside functions are
not followed: they cost only when that code runs. The first module to grow a shared
table (sys.modules, a new qstr pool) pays for it, so single figures carry a few
hundred bytes of noise; sums do not.

ROMFS: `mpremote romfs -o IMG build DIR` makes the image; the process reads it into one
bytes object (the unix port has no memory-mapped flash; that block is not counted, the
figures are deltas) and mounts vfs.VfsRom(bytes) at /rom.
"""

import json
import os
import re
import subprocess

from tools import mp
from tools.paths import executable

HEAP = "2m"  # room enough that no import is measured under GC pressure

_PROBE = r"""
import gc, sys, builtins, micropython
ROMFS = %(romfs)r
if ROMFS:
    import vfs
    with open(ROMFS, "rb") as f:
        _img = f.read()
    vfs.mount(vfs.VfsRom(_img), "/rom")
    sys.path[:] = ["/rom", "/rom/lib", ".frozen"]
else:
    sys.path[:] = ["", "lib", ".frozen"]
_real = builtins.__import__
_kids = [[0, []]]
OWN = {}
EDGES = {}

def _resolve(name, g, lvl):
    if not lvl:
        return name
    me = (g or {}).get("__name__", "")
    for base in (me, me.rsplit(".", 1)[0]):
        if base + "." + name in sys.modules:
            return base + "." + name
    return name

def _hook(name, g=None, l=None, fl=(), lvl=0):
    before = set(sys.modules)
    print("QB")
    micropython.qstr_info()
    gc.collect()
    a = gc.mem_alloc()
    _kids.append([0, []])
    try:
        m = _real(name, g, l, fl, lvl)
    finally:
        child, claimed = _kids.pop()
    gc.collect()
    d = gc.mem_alloc() - a
    new = [k for k in sys.modules if k not in before]
    mine = [k for k in new if k not in claimed]
    key = "+".join(sorted(mine))
    if mine:
        OWN[key] = d - child
    print("QA", key)
    micropython.qstr_info()
    parent = (g or {}).get("__name__")
    if parent and parent != "__main__":
        EDGES.setdefault(parent, []).append(_resolve(name, g, lvl))
    _kids[-1][0] += d
    _kids[-1][1].extend(new)
    return m

builtins.__import__ = _hook
ERR = {}
for _n in %(names)r:
    if _n in sys.modules:
        continue
    try:
        __import__(_n)
    except Exception as e:  # an ESP32-only module: recorded, not fatal
        ERR[_n] = "%%s: %%s" %% (type(e).__name__, e)
builtins.__import__ = _real
import json
print("RESULT " + json.dumps({"own": OWN, "edges": EDGES, "errors": ERR}))
"""


def module_names(flash):
    """Importable names of the .mpy files on a staged flash: lib/x -> x, plug/y -> plug.y,
    board.mpy -> board, packages as pkg (their __init__) and pkg.sub."""
    names = []
    for d, _dirs, files in os.walk(flash):
        rel = os.path.relpath(d, flash).replace(os.sep, "/")
        parts = [] if rel == "." else rel.split("/")
        if parts[:1] == ["lib"]:
            parts = parts[1:]
        for f in files:
            if not f.endswith(".mpy") or f.startswith("main."):
                continue
            stem = f[:-4]
            names.append(".".join(parts + ([] if stem == "__init__" else [stem])))
    return sorted(n for n in names if n)


def build_romfs(flash, out):
    """A ROMFS image of the staged flash (the .mpy files as they are)."""
    subprocess.run([executable("mpremote"), "romfs", "--no-mpy", "-o", out, "build", flash],
                   check=True, capture_output=True, text=True, timeout=120)
    return out


def costs(flash, names=None, romfs=None):
    """{"own": {module: bytes}, "deps": {module: bytes incl. what it imports},
    "imports": {module: [direct imports]}, "errors": {module: message}}."""
    code = _PROBE % {"romfs": romfs, "names": list(names or module_names(flash))}
    r = subprocess.run(mp.command(HEAP) + ["-c", code], capture_output=True, text=True,
                       cwd=flash, env=mp.env(()), timeout=120)
    res, qstr = None, _qstr_accounting(r.stdout)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
    if res is None:
        raise RuntimeError("module probe failed:\n%s%s" % (r.stdout[-2000:], r.stderr[-2000:]))
    own, qown = {}, {}
    for key, v in res["own"].items():  # "a+b": two modules born in one import, split evenly
        parts = key.split("+")
        for p in parts:
            own[p] = v // len(parts)
            qown[p] = qstr.get(key, 0) // len(parts)
    edges = dict((k, sorted(set(v))) for k, v in res["edges"].items())
    deps = {}
    for name in own:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            todo.extend(edges.get(n, ()))
        deps[name] = sum(own.get(n, 0) for n in seen)
    return {"own": own, "deps": deps, "qstr": qown, "imports": edges, "errors": res["errors"],
            "qstr_total": qstr.get("", 0)}


_QINFO = re.compile(r"qstr pool: .*n_total_bytes=(\d+)")


def _qstr_accounting(out):
    """{module key: bytes of qstr pools its import added, own}, from the probe's
    QB/QA markers each followed by micropython.qstr_info(); "" holds the grand total."""
    stack, res, first, last, mark = [], {}, None, None, None
    for line in out.splitlines():
        m = _QINFO.match(line)
        if line.startswith(("QB", "QA")):
            mark = line
        elif m and mark is not None:
            n = int(m.group(1))
            first = n if first is None else first
            last = n
            if mark == "QB":
                stack.append([n, 0])
            else:
                start, kids = stack.pop()
                if stack:
                    stack[-1][1] += n - start
                key = mark[3:]
                if key:
                    res[key] = n - start - kids
            mark = None
    res[""] = (last or 0) - (first or 0)
    return res


def file_sizes(flash):
    """{relative path: bytes} of everything on a staged flash."""
    sizes = {}
    for d, _dirs, files in os.walk(flash):
        for f in files:
            p = os.path.join(d, f)
            sizes[os.path.relpath(p, flash).replace(os.sep, "/")] = os.path.getsize(p)
    return sizes


if __name__ == "__main__":  # python -m tools.bench.app_modules: the raw table as JSON
    from tools.deploy import stage

    print(json.dumps(costs(stage("sim")), indent=1))
