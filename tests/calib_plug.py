# A virtual plug app for the REPL calibration test (tests/test_calibration_repl.py): sim
# chips with factory gain errors, a phase error on M1/B and no-load noise; the real
# ledger, meter and calibration restore at boot; the `cal` helper at the serial REPL;
# metering at 1 s in sim time (CALIB_SPEED x real time).
import asyncio
import os

from plug import repl
from plug.calibration import Calibrator, restore
from sim.load import Load
from simplug import SimPlug

plug = SimPlug("data", speed=float(os.getenv("CALIB_SPEED") or "1"), checkpoint_s=60,
               gain_spread=0.04, noise_a=0.003, phase_err_deg=[0.0, 1.5], log=repl.log)
ledger = plug.ledger
meter = plug.meter
ledger.restore()
restore(plug.store, plug.front_ends, log=repl.log)
cal = Calibrator(meter, plug.store, log=repl.log)


async def main():
    asyncio.create_task(meter.run())
    ns = {"cal": cal, "plug": plug, "meter": meter, "ledger": ledger, "Load": Load}
    await repl.start(ns, banner="calibration plug ready\r\n")


try:
    asyncio.run(main())
except KeyboardInterrupt:  # a clean stop
    meter.shutdown()
    raise
