"""pcap writer for the emulator's forwarded datagrams (libpcap format, LINKTYPE_RAW = 101).

Each datagram gets a synthetic IPv4 header (RFC 791, header checksum) and UDP header
(RFC 768, checksum over the pseudo-header) with the real addresses and ports of the host
sockets, so `tshark -d udp.port==X,dtls` decodes them.
"""
import struct
import threading
import time

LINKTYPE_RAW = 101
PCAP_MAGIC = 0xA1B2C3D4
IPPROTO_UDP = 17


def _checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip4(addr):
    return bytes(int(x) for x in addr.split("."))


def ipv4_udp_packet(src, dst, payload, ident=0):
    """One raw IPv4 packet carrying `payload` from src=(ip, port) to dst=(ip, port)."""
    sip, dip = _ip4(src[0]), _ip4(dst[0])
    ulen = 8 + len(payload)
    pseudo = sip + dip + struct.pack("!BBH", 0, IPPROTO_UDP, ulen)
    udp = struct.pack("!HHHH", src[1], dst[1], ulen, 0) + payload
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    total = 20 + ulen
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64,
                      IPPROTO_UDP, 0, sip, dip)
    hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
    return hdr + udp


class PcapWriter:
    """Appends IPv4/UDP packets to a pcap file; thread-safe; flushes after every packet."""

    def __init__(self, path, snaplen=65535):
        self.path = path
        self._f = open(path, "wb")
        self._f.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))
        self._f.flush()
        self._lock = threading.Lock()
        self._ident = 0
        self.packets = 0

    def write(self, src, dst, payload, ts=None):
        ts = time.time() if ts is None else ts
        with self._lock:
            if self._f is None:
                return
            self._ident += 1
            pkt = ipv4_udp_packet(src, dst, bytes(payload), self._ident)
            sec = int(ts)
            usec = int((ts - sec) * 1000000)
            self._f.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)) + pkt)
            self._f.flush()
            self.packets += 1

    def close(self):
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None
