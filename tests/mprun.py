# Run dual-mode test modules on MicroPython: micropython tests/mprun.py test_lib_rlp ...
# Prints one line per test and closes with "N passed, N failed"; exits 1 on failures.
import sys

try:
    import gc
except ImportError:
    gc = None


def run_module(name):
    passed = failed = 0
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        if not callable(fn):
            continue
        if gc:
            gc.collect()
        try:
            fn()
            passed += 1
            print("ok   %s.%s" % (name, attr))
        except Exception as e:  # report and go on with the next test
            failed += 1
            print("FAIL %s.%s" % (name, attr))
            sys.print_exception(e) if hasattr(sys, "print_exception") else print(repr(e))
    return passed, failed


def main(names):
    total_p = total_f = 0
    for name in names:
        p, f = run_module(name)
        total_p += p
        total_f += f
    print("%d passed, %d failed" % (total_p, total_f))
    return total_f


if __name__ == "__main__":
    if main(sys.argv[1:]):
        sys.exit(1)
