"""Small state that survives deep sleep: RTC memory first, a flash file as fallback.

An ESP32 wakes from deep sleep by rebooting; RAM is lost but RTC slow memory is kept
(machine.RTC().memory(), 2048 bytes on the ESP32 port). ARCHITECTURE.md ("Persistent
state") lists what goes here: CoAP message-ID/token counters, the DTLS session blob, the
EnOS auth state, the queue position. Each layer hands over an opaque bytes value under
its own key; this module only stores them.

Blob format (little endian):
    "ES" | version 1 (1) | gen (4) | count (1) | count * (klen (1) | key | vlen (2) | value)
    | crc32 of everything before (4)
A blob with a bad magic, version, length or CRC is ignored as a whole (empty state).

Where a save goes:
- RTC memory when there is an RTC and the blob fits (rtc_size). A flash copy, if one
  exists, is then removed, because after a power cut (RTC lost) an older flash copy would
  bring back stale DTLS sequence numbers and counters: starting empty is correct then.
- Otherwise a flash file (path), written to path + ".tmp" first, then renamed over path;
  RTC memory is cleared so an older RTC blob never wins. load() takes the newest valid one
  of RTC memory, path and path + ".tmp" (by gen), which also covers FAT, whose rename
  removes the target first.
RTC memory does not survive a power cut: state is a cache for fast wake-ups, never the only
copy of anything that must not be lost (the queue lives in enosnb.store).
"""
import binascii
import os
import struct

from micropython import const

_MAGIC = b"ES"
_VERSION = const(1)
_HEAD = "<2sBIB"
_HEAD_LEN = const(8)
_RTC_SIZE = const(2048)


class StateError(Exception):
    """A key or value the container cannot hold (too long, wrong type)."""


def _board_rtc():
    """machine.RTC() when the board has one with memory(), else None."""
    try:
        import machine
        rtc = machine.RTC()
    except (ImportError, AttributeError, OSError):
        return None
    return rtc if hasattr(rtc, "memory") else None


def encode(entries, gen):
    """entries: dict str -> bytes. Returns the CRC-protected blob."""
    parts = [struct.pack(_HEAD, _MAGIC, _VERSION, gen & 0xFFFFFFFF, len(entries))]
    for key in sorted(entries):
        k = key.encode()
        v = entries[key]
        parts.append(struct.pack("<B", len(k)) + k + struct.pack("<H", len(v)))
        parts.append(v)
    body = b"".join(parts)
    return body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)


def decode(blob):
    """Returns (gen, dict) for a valid blob, or None for anything else."""
    if not blob or len(blob) < _HEAD_LEN + 4:
        return None
    blob = bytes(blob)
    n = len(blob) - 4
    if struct.unpack("<I", blob[n:])[0] != binascii.crc32(blob[:n]) & 0xFFFFFFFF:
        return None
    magic, version, gen, count = struct.unpack(_HEAD, blob[:_HEAD_LEN])
    if magic != _MAGIC or version != _VERSION:
        return None
    entries = {}
    pos = _HEAD_LEN
    for _ in range(count):
        # klen | key | vlen | value. The CRC after the body keeps the reads of klen and vlen
        # inside the blob until the checks reject an entry that runs past the body.
        vpos = pos + 3 + blob[pos]
        if vpos > n:
            return None
        end = vpos + (blob[vpos - 2] | blob[vpos - 1] << 8)
        if end > n:
            return None
        try:
            entries[blob[pos + 1:vpos - 2].decode()] = blob[vpos:end]
        except UnicodeError:
            return None
        pos = end
    if pos != n:
        return None
    return gen, entries


class State:
    """Key -> bytes container kept across deep sleep.

    State(rtc=True (the board's RTC memory, if any), an RTC or None, path, rtc_size=2048)
        get(key, default=None) -> bytes ; set(key, value) ; delete(key) ; keys() ; clear()
        save() -> "rtc" or "flash" ; .loaded_from -> "rtc", "flash" or None (nothing valid)
    Nothing is written until save(); call it once per cycle, right before deep sleep.
    """

    def __init__(self, rtc, path, rtc_size=_RTC_SIZE):
        self.rtc = _board_rtc() if rtc is True else rtc
        self.path = path
        self._tmp = path + ".tmp"
        self.rtc_size = rtc_size
        self.load()

    def load(self):
        best = None
        if self.rtc is not None:
            try:
                got = decode(self.rtc.memory())
            except (OSError, ValueError):
                got = None
            if got is not None:
                best = (got, "rtc")
        for p in (self.path, self._tmp):
            got = decode(self._read(p))
            if got is not None and (best is None or got[0] > best[0][0]):
                best = (got, "flash")
        if best is None:
            self.gen, self._entries, self.loaded_from = 0, {}, None
        else:
            (self.gen, self._entries), self.loaded_from = best

    def get(self, key, default=None):
        return self._entries.get(key, default)

    def set(self, key, value):
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, (bytes, bytearray)):
            raise StateError("state value for %r must be bytes" % key)
        if not 0 < len(key.encode()) < 256 or len(value) > 0xFFFF:
            raise StateError("state key %r: 1..255 byte key, value up to 65535 bytes" % key)
        self._entries[key] = bytes(value)

    def delete(self, key):
        self._entries.pop(key, None)

    def keys(self):
        return list(self._entries)

    def clear(self):
        self._entries = {}

    def save(self):
        self.gen = (self.gen + 1) & 0xFFFFFFFF
        blob = encode(self._entries, self.gen)
        if self.rtc is not None and len(blob) <= self.rtc_size:
            try:
                self.rtc.memory(blob)
            except (OSError, ValueError):
                pass
            else:
                self._remove(self.path)
                self._remove(self._tmp)
                return "rtc"
        tmp = self._tmp
        f = open(tmp, "wb")
        try:
            f.write(blob)
        finally:
            f.close()
        try:
            os.rename(tmp, self.path)
        except OSError:
            self._remove(self.path)
            os.rename(tmp, self.path)
        if self.rtc is not None:
            try:
                self.rtc.memory(b"")
            except (OSError, ValueError):
                pass
        return "flash"

    @staticmethod
    def _read(path):
        try:
            f = open(path, "rb")
        except OSError:
            return None
        try:
            return f.read()
        finally:
            f.close()

    @staticmethod
    def _remove(path):
        try:
            os.remove(path)
        except OSError:
            pass
