"""The MicroPython harness itself (tools/mp.py): the heap cap, the errors a failing
snippet raises, and the module path device code is imported from."""

import os

import pytest

from tools import mp
from tools.paths import BOARDS, FIRMWARE, LIB

HEAP_TOTAL = "import gc; gc.collect(); print(gc.mem_free() + gc.mem_alloc())"


def test_default_heap_is_64k_and_heap_argument_caps_it():
    default = int(mp.run(HEAP_TOTAL))
    half = int(mp.run(HEAP_TOTAL, heap="32k"))
    assert 60 * 1024 <= default <= 64 * 1024
    assert 30 * 1024 <= half <= 32 * 1024
    assert abs(default - 2 * half) < 2048


def test_allocation_beyond_the_heap_is_a_memory_error():
    with pytest.raises(mp.MicroPythonError, match="MemoryError"):
        mp.run("x = bytearray(100000)")
    mp.run("x = bytearray(100000)", heap="256k")


def test_uncaught_exception_names_itself_first_and_keeps_the_traceback():
    with pytest.raises(mp.MicroPythonError) as e:
        mp.run("def meter_step():\n    raise ValueError('device-side boom')\nmeter_step()\n")
    msg = str(e.value)
    # pytest's summary shows only the first line
    assert msg.splitlines()[0] == "MicroPython exited 1: ValueError: device-side boom"
    assert "Traceback (most recent call last)" in msg and "in meter_step" in msg


def test_task_exception_on_stderr_fails_although_exit_status_is_0():
    code = ("import asyncio\n"
            "async def bad():\n    raise KeyError('lost task')\n"
            "async def main():\n    asyncio.create_task(bad())\n    await asyncio.sleep_ms(10)\n"
            "asyncio.run(main())\n")
    with pytest.raises(mp.MicroPythonError) as e:
        mp.run(code)
    assert e.value.args[0].splitlines()[0] == "MicroPython exited 0: KeyError: lost task"
    assert "in bad" in str(e.value)


def test_printed_and_handled_exception_is_not_an_error():
    out = mp.run("import sys\ntry:\n    1 // 0\nexcept ZeroDivisionError as e:\n"
                 "    sys.print_exception(e)\nprint('survived')\n")
    assert out.rstrip().endswith("survived")


def test_device_modules_import_from_micropypath():
    out = mp.run("import eth, plug, plug.ledger, board_sim\n"
                 "print(eth.__file__); print(plug.ledger.__file__); print(board_sim.__file__)",
                 heap="256k", cwd="/")
    got = [os.path.realpath(p) for p in out.split()]
    want = [os.path.join(LIB, "eth.py"), os.path.join(FIRMWARE, "plug", "ledger.py"),
            os.path.join(BOARDS, "board_sim.py")]
    assert got == [os.path.realpath(p) for p in want]
