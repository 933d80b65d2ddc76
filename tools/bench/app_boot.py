# Boot script for measuring the whole app on the virtual plug (runs on MicroPython, as
# VPLUG_MAIN of tools/vplug.py). Environment:
#   PLUG_ROMFS  path of a ROMFS image holding the deployed flash (main.py, board.mpy,
#               lib/, plug/): read into one bytes object and mounted at /rom with
#               vfs.VfsRom, so bytecode executes in place as from an ESP32's romfs
#               partition. Empty: the code is the .mpy files on the flash (cwd).
#   PLUG_FREE   bytes of heap to leave the app: a ballast bytearray takes the rest, so a
#               big -X heapsize that also holds the image behaves like a small heap.
# It prints "[bench] ..." lines, then runs main.py (the app) from the flash or the image.
import gc
import os
import sys

gc.collect()
_used0 = gc.mem_alloc()
_img = os.getenv("PLUG_ROMFS") or ""
if _img:
    import vfs

    with open(_img, "rb") as _f:
        _rom = _f.read()
    vfs.mount(vfs.VfsRom(_rom), "/rom")
    sys.path[:] = ["", "/rom", "/rom/lib", ".frozen"]
    print("[bench] romfs %d bytes mounted at /rom" % len(_rom))
_free = int(os.getenv("PLUG_FREE") or "0")
_ballast = None
gc.collect()
if _free:
    _extra = gc.mem_free() - (_free - _used0)
    if _extra > 64:
        _ballast = bytearray(_extra - 64)  # block header and rounding: stay under the cap
gc.collect()
# what the image and the ballast hold, for the host to take off gc.mem_alloc()
import builtins  # noqa: E402

builtins._bench_reserved = gc.mem_alloc() - _used0
print("[bench] heap at boot: %d used (incl. %d image, %d ballast), %d free"
      % (gc.mem_alloc(), len(_rom) if _img else 0, len(_ballast) if _ballast else 0,
         gc.mem_free()))
if _img:
    import main  # noqa: F401 - /rom/main.py runs the app
else:
    with open("main.py") as _f:
        _src = _f.read()
    exec(compile(_src, "main.py", "exec"), {"__name__": "__main__"})
