# A stand-in for the ESP32's `network` module (Wi-Fi station only), for testing the board
# files' network_up() on the unix port. A test sets how the access point behaves:
#   network.ap = {"ssid": "home", "password": "pw", "after_polls": 3}
# connect() with the right credentials is connected after `after_polls` isconnected()
# polls; wrong credentials or another SSID never connect (status STAT_WRONG_PASSWORD or
# STAT_NO_AP_FOUND), as on the plug.
STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_WRONG_PASSWORD = 202
STAT_NO_AP_FOUND = 201

ap = {"ssid": "home", "password": "secret", "after_polls": 2}
log = []
_hostname = "mpy-esp32"  # MicroPython's default


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    if not isinstance(name, str) or not 0 < len(name) <= 32:
        raise ValueError("hostname too long")
    log.append(("hostname", name))
    _hostname = name


class WLAN:
    _connected = False

    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = False
        self._status = STAT_IDLE
        self._polls = None

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        log.append(("active", self._active))

    def connect(self, ssid, password):
        if not self._active:
            raise OSError("Wifi Not Started")
        log.append(("connect", ssid))
        if ssid != ap.get("ssid"):
            self._status = STAT_NO_AP_FOUND
            self._polls = None
        elif password != ap.get("password"):
            self._status = STAT_WRONG_PASSWORD
            self._polls = None
        else:
            self._status = STAT_CONNECTING
            self._polls = ap.get("after_polls", 0)

    def disconnect(self):
        log.append(("disconnect",))
        WLAN._connected = False
        self._polls = None
        self._status = STAT_IDLE

    def isconnected(self):
        if not WLAN._connected and self._polls is not None:
            if self._polls <= 0:
                WLAN._connected = True
                self._status = STAT_GOT_IP
            else:
                self._polls -= 1
        return WLAN._connected

    def status(self, *args):
        if args == ("rssi",):
            if not WLAN._connected:
                raise OSError("Wifi Not Connected")
            return -61
        return self._status

    def config(self, *args):
        if args == ("mac",):
            return b"\x24\x0a\xc4\x12\xab\xcd"
        raise ValueError("unknown config param")

    def ifconfig(self, *args):
        return ("192.168.1.77", "255.255.255.0", "192.168.1.1", "192.168.1.1")
