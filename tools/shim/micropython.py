"""CPython stand-in for MicroPython's `micropython` module, so device code that is plain
Python (config, billing, parsers) can also be imported by host tools and property tests.
Viper and native functions are left undecorated here; modules that use them pick their
portable fallback on CPython."""


def const(x):
    return x


def native(f):
    return f


def viper(f):
    raise ImportError("viper code does not run on CPython")


def mem_info(*a):
    pass


def opt_level(*a):
    return 0
