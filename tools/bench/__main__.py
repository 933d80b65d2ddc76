"""make bench: run every tools/bench/bench_*.py and print their figures in one run.

Each bench module has `run()` which prints its own lines, peers side by side.
"""

import glob
import importlib
import os
import sys
import traceback


def main(only=None):
    here = os.path.dirname(os.path.abspath(__file__))
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(here, "bench_*.py")))
    failed = 0
    for name in names:
        if only and not any(o in name for o in only):
            continue
        print("== %s" % name[6:], flush=True)
        try:
            importlib.import_module("tools.bench." + name).run()
        except Exception:
            failed += 1
            traceback.print_exc()
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
