# A stand-in for the ESP32 firmware's frozen `ntptime`: settime() records the call, or
# raises OSError (no reply) when `fail` is set, as the real one does on a timeout.
fail = False
calls = 0


def settime():
    global calls
    calls += 1
    if fail:
        raise OSError(110)  # ETIMEDOUT
