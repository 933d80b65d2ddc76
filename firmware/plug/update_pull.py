# Releases the plug fetches itself: the signed config's update.url, looked at every
# update.interval_s by app.py's upkeep (this module is loaded only for a look, then let
# go of). The bundle is read as it arrives (http_client.request(stream=True)) through
# update.receive: the same checks and staging as POST /update, the same 512-byte buffer,
# never the bundle in RAM. What the server keeps serving once it is installed (a bundle
# not newer than the running release, or than one rolled back, or served while one is on
# trial) is dropped after its manifest, quietly: no record, no log line, and only the
# manifest's bytes read. Anything else refused is logged and shown as for a push. A
# staged release is installed (plug/slots.py, or plug/update_image.py for a frozen plug)
# and the plug reboots into it on trial.
#
#   await pull(plug, url, log)   -> the slot installed, or None
import asyncio

_TIMEOUT_S = 10  # one wait for the server
_DEADLINE_MS = 600000  # the whole bundle (1.5 MB at most) over a slow link


class _Body:
    """The reply's body as the stream update.receive reads: each read lets the other
    tasks run and feeds the watchdog (the upkeep that feeds it waits for this pull); a
    network error is the bundle's refusal."""

    def __init__(self, reply, wdt):
        self.r = reply
        self.wdt = wdt

    async def readinto(self, mv):
        from plug.update import UpdateError

        await asyncio.sleep_ms(0)
        if self.wdt:
            self.wdt.feed()
        try:
            return self.r.readinto(mv)
        except OSError as e:
            raise UpdateError("download cut off: %s" % (e,))


async def pull(plug, url, log):
    from plug import update
    from plug.app import WATCHDOG_MS
    from plug.http_client import request

    try:
        status, body = request("GET", url, timeout_s=_TIMEOUT_S, deadline_ms=_DEADLINE_MS,
                               max_body_bytes=update.MAX_BUNDLE, stream=True)
    except Exception as e:  # noqa: BLE001 - network: the next interval tries again
        log("[update] pull from %s failed: %s" % (url, e))
        return None
    try:
        if status != 200:
            log("[update] pull from %s: HTTP %d" % (url, status))
            return None
        try:
            m = await update.receive(plug, _Body(body, plug.board.watchdog(WATCHDOG_MS)),
                                     body.left, pulled=True)
        except update.UpdateError:
            return None  # recorded and logged by receive, or dropped quietly
        log("[update] %s pulled from %s" % (m["version"], url))
        return update.install(plug, m)
    finally:
        body.close()
