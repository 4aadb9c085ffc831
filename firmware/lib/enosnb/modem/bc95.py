"""Quectel BC95 driver (spec/modems.md §3, §10.4, §10.5; Quectel BC95 AT Commands Manual:
NSOCR/NSOST/NSOSTF/NSONMI/NSORF/NSOCL, NCCID, CPSMS, NPSMR).

Warm bring-up (module already registered, AUTOCONNECT): AT, ATE0, AT+CMEE=1, AT+CEREG=1,
AT+CEREG?, AT+NSOCR=DGRAM,17,0,1, AT+NSOST=... (7 commands).
Cold: adds AT+NCCID (SIM), AT+CFUN=0, AT+NBAND, AT+CGDCONT=0,"IP",..., AT+CFUN=1, AT+CGATT=1 and
AT+CEREG? polling. No "+" prefix on socket answers, no space after colons, lengths in bytes,
IP addresses unquoted. +NSONMI only announces data: AT+NSORF drains it until remaining is 0.
"""
import binascii

from micropython import const

from enosnb.clock import SYSTEM
from enosnb.modem.base import Modem, RELEASE_NONE, fields, number
from enosnb.modem.errors import AtCommandError, SimError, SocketError

CME_UPLINK_BUSY = const(159)
CME_UART_BUFFER = const(536)
BUSY_RETRIES = const(3)
BUSY_WAIT_MS = const(30)
NSORF_MAX = const(512)
NSORF_CALLS = const(16)


class Bc95(Modem):
    NAME = "BC95"
    BOOT_LINES = ("REBOOTING", "Neul")
    BOOT_PREFIXES = ("REBOOT_CAUSE", "Boot: ")
    SYNC_INTERVAL_MS = 1000
    DEFAULT_TIMEOUT_MS = 2000
    TIMEOUTS = {
        "AT+CFUN": 15000,
        "AT+CGATT": 15000,
        "AT+NSOST": 5000,
        "AT+NSORF": 5000,
        "AT+NRB": 40000,
        "AT+CPSMS": 5000,
    }
    IGNORED_URCS = ("+CSCON", "+NSOSTR")
    BAND_CMD = "AT+NBAND="
    APN_CMD = 'AT+CGDCONT=0,"IP","%s"'
    ICCID_CMD = "AT+NCCID"
    IP_CMD = "AT+CGPADDR"
    PSM_URC_CMD = "AT+NPSMR=1"
    DNS_CMD = "AT+QDNS=0,%s"
    DNS_TIMEOUT_MS = 60000
    CLOSE_CMD = "AT+NSOCL=%d"

    def __init__(self, uart, clock=SYSTEM, **kw):
        Modem.__init__(self, uart, clock, **kw)
        self.has_nsostf = True
        self.at.urc("+NSONMI", self._urc_nsonmi)
        self.at.urc("+NSOCLI", self._urc_nsocli)
        self.at.urc("+NPSMR", self._urc_npsmr)
        self.at.urc("+QDNS", self._urc_dns)

    # -- URCs ----------------------------------------------------------------------------

    def _urc_nsonmi(self, line):
        sock = self._socket_by_id(int(fields(line)[0]))
        if sock is not None:
            sock.rx_pending = True

    def _urc_nsocli(self, line):
        self._net_closed(int(fields(line)[0]))

    def _urc_npsmr(self, line):
        # UART data wakes a BC95 (the first character may be lost: sync retries AT).
        self._psm_changed(fields(line)[0] == "1")

    def _urc_dns(self, line):
        f = fields(line)
        self._dns = "" if f[0] == "QUERY_DNS_FAILED" else f[0]

    # -- bring-up ------------------------------------------------------------------------

    def check_sim(self):
        try:
            if self.query("AT+NCCID"):
                return
        except AtCommandError:
            pass
        try:
            if self.query("AT+CIMI"):
                return
        except AtCommandError as e:
            raise SimError("no SIM answer to AT+NCCID or AT+CIMI (%s); insert or reseat the SIM"
                           % e)
        raise SimError("no SIM identity from AT+NCCID or AT+CIMI; insert or reseat the SIM")

    def _radio_up(self):
        self.cmd("AT+CFUN=1")
        self.cmd("AT+CGATT=1")

    # -- sockets -------------------------------------------------------------------------

    def _open(self, sock):
        lines = self.cmd("AT+NSOCR=DGRAM,17,0,1")
        for line in lines:
            if line.isdigit():
                sock.id = int(line)
                return
        # mbed PR #7052: a bare OK without a socket number is a failure.
        raise SocketError("AT+NSOCR gave no socket number (all 7 in use?); close unused sockets")

    def _send_once(self, sock, data, release):
        hexdata = binascii.hexlify(data).upper()
        if release != RELEASE_NONE and self.has_nsostf:
            head = "AT+NSOSTF=%d,%s,%d,0x%X,%d," % (sock.id, sock.ip, sock.port, release,
                                                   len(data))
        else:
            head = "AT+NSOST=%d,%s,%d,%d," % (sock.id, sock.ip, sock.port, len(data))
        for attempt in range(BUSY_RETRIES + 1):
            try:
                lines = self.cmd(head, tail=hexdata, prefix="+NSOST")
                break
            except AtCommandError as e:
                if e.code in (CME_UPLINK_BUSY, CME_UART_BUFFER) and attempt < BUSY_RETRIES:
                    self.clock.sleep_ms(BUSY_WAIT_MS)
                    continue
                if head.startswith("AT+NSOSTF") and e.code in (None, 4):
                    # Firmware before B656 has no NSOSTF: plain NSOST from now on.
                    self.has_nsostf = False
                raise
        for line in lines:
            f = line.split(",")
            if len(f) == 2 and f[0].strip() == str(sock.id):
                if number(f[1], "AT+NSOST") != len(data):
                    raise SocketError("BC95 accepted %s of %d bytes; datagram not sent whole"
                                      % (f[1], len(data)))
                return

    def _fetch(self, sock):
        # "remaining" counts the current message on some firmware and the whole buffer on
        # others, and mode 1 announces nothing new until the buffer is empty: read until an
        # answer carries no data line (spec §3.6, §3.9 item 4).
        if not sock.rx_pending or sock.id is None:
            return
        sock.rx_pending = False
        for _ in range(NSORF_CALLS):
            got = False
            for line in self.cmd("AT+NSORF=%d,%d" % (sock.id, NSORF_MAX)):
                f = line.split(",")
                if len(f) == 6 and f[0] == str(sock.id):
                    got = True
                    try:
                        if int(f[3]) * 2 != len(f[4]):
                            raise ValueError
                        sock._deliver(binascii.unhexlify(f[4]))
                    except ValueError:
                        # A mangled read is a lost datagram, as on the radio.
                        self.at.bad_urcs += 1
            if not got:
                return
        sock.rx_pending = True
