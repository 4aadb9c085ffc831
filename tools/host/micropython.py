"""CPython stand-in for MicroPython's `micropython` module, so device code runs unchanged."""


def const(value):
    return value


def mem_info(*args):
    return None


def alloc_emergency_exception_buf(size):
    return None
