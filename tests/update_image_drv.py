# The image path of an update on the unix port, with the flash's OTA partitions the
# file-backed stand-in (boards/sim/partition.py) under ./ota. argv[1] is the step:
#   setup SIZE                   two erased partitions, ota_0 running
#   stage BUNDLE OWNER ADDRESS RUNNING LENGTH|- FROZEN(1|0)
#                                the plug's Staging on the bundle (as from its HTTP stream),
#                                then, if it was taken, update_image.install (record, then
#                                set_boot): prints STAGED/INSTALLED or REFUSED <reason>
#   boot [keep]                  a reset: the bootloader's step, then slots.image_boot on
#                                slot.json; "keep": then slots.keep (the trial passed)
#   unerased                     writes to an unerased block, each way
# Every step ends with "OTADATA <json>".
import asyncio
import gc
import json
import sys

import eth_message  # noqa: F401 - loaded by the app already (config signatures)
from sim import partition
from sim.partition import Partition


class FileStream:
    def __init__(self, f):
        self.f = f

    async def readinto(self, mv):
        return self.f.readinto(mv[:536])


class FakePlug:
    class store:
        @staticmethod
        def save(name, rec):
            print("RECORD", name, json.dumps(rec))

    class clock:
        @staticmethod
        def time():
            return 0

    def reboot(self):
        print("REBOOT")


def _quiet_app():
    # slots logs through plug.app, which the driver does not load
    import plug

    class App:
        log = print

    plug.app = App
    sys.modules["plug.app"] = App


def stage(path, owner, address, running, length, frozen):
    from plug import update_image
    from plug.update import Staging, UpdateError

    update_image.API = Partition
    _quiet_app()
    gc.collect()
    with open(path, "rb") as f:
        s = Staging(owner, address, "sim", running, 1)
        s.parts = Partition if frozen == "1" else None
        try:
            m = asyncio.run(s.run(FileStream(f), None if length == "-" else int(length)))
        except UpdateError as e:
            print("REFUSED", e)
            return
    print("STAGED", m["version"], "image" if s.part is not None else "files")
    if s.part is not None:

        async def install():
            m["_part"] = s.part
            print("INSTALLED", update_image.install(FakePlug(), m))

        asyncio.run(install())


def boot(keep):
    from plug import slots, update_image

    update_image.API = Partition
    print("RUNNING", partition.boot())
    rec = slots.load()
    if rec is not None and rec.get("image") and not rec.get("good"):
        rec = slots.image_boot(rec, Partition)
        if keep and not rec.get("rolled_back"):
            rec = slots.keep(rec)
    print("SLOT", json.dumps(rec))


def unerased():
    p = Partition("ota_1")
    p.ioctl(6, 1)
    p.writeblocks(1, b"\x12" * 16, 0)
    p.writeblocks(1, b"\x34" * 16, 16)  # erased bytes: fine
    for how in ("offset", "simple"):
        try:
            if how == "offset":
                p.writeblocks(1, b"\x56" * 16, 8)
            else:
                p.writeblocks(1, b"\x56" * 16)  # the simple form erases first
            print("WROTE", how)
        except OSError as e:
            print("OSERROR", how, e)
    b = bytearray(40)
    p.readblocks(1, b)
    print("BLOCK", __import__("binascii").hexlify(b).decode())


def main():
    step = sys.argv[1]
    if step == "setup":
        partition.setup("ota", int(sys.argv[2]))
    else:
        partition.use("ota")
        if step == "stage":
            stage(*sys.argv[2:8])
        elif step == "boot":
            boot(sys.argv[2:] == ["keep"])
        elif step == "unerased":
            unerased()
    with open("ota/otadata.json") as f:
        print("OTADATA", f.read())


main()
