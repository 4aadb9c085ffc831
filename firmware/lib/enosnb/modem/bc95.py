"""Quectel BC95 driver (modems.md §3, §10.4, §10.5, §13; Quectel BC95 AT Commands Manual V1.8,
BC95 FAQ V1.4; BC95-G&BC68 AT Commands Manual for NSONMI).

Wake bring-up (module registered): AT, ATE0, AT+CMEE=1, AT+CEREG=4, AT+CEREG?,
AT+NSOCR=DGRAM,17,0,1, AT+NSOST=... (7 commands; 6 before B657SP2, which has no ATE).
Not registered: AT+NCCID (SIM), then only what differs: bands and APN with the radio off and a
reboot for the bands (AT+NBAND takes effect after AT+NRB), AT+CFUN=1 / AT+CGATT=1 only where
AUTOCONNECT does not attach by itself, and AT+CEREG? polling. No "+" prefix on socket answers,
no space after colons, lengths in bytes, IP addresses unquoted. +NSONMI only announces data
(mode 1): AT+NSORF reads it, a whole datagram (up to 1,472 bytes) at a time.

Commands arrived with firmware releases (manual V1.8 §2): NSOSTF B656, CPSMS/CEDRXS/NCCID
B657SP1, ATE and NPSMR B657SP2. The driver reads AT+CGMR once and sends only what the revision
has; a command refused anyway is learnt (Modem.memory()).
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
NSORF_MAX = const(1472)     # largest datagram the module receives (manual §5.17)
NSORF_CALLS = const(16)

# (feature, build, SP): the first BC95-Bx firmware with it (manual V1.8 §2).
_SINCE = [("nsostf", 656, 0), ("psm", 657, 1), ("edrx", 657, 1), ("nccid", 657, 1),
          ("cereg4", 657, 1), ("ate", 657, 2), ("psmurc", 657, 2)]


def build(revision):
    """(build, SP) of a BC95-Bx revision "V100R100C10B657SP2" -> (657, 2); None for anything
    else (BC95-G "V150...", unknown), which is then assumed to have every command."""
    if not revision or not revision.startswith("V100"):
        return None
    i = revision.find("B", 4)
    if i < 0 or not revision[i + 1:i + 4].isdigit():
        return None
    sp = 0
    j = revision.find("SP", i)
    if j > 0:
        k = j + 2
        while k < len(revision) and revision[k].isdigit():
            k += 1
        sp = int(revision[j + 2:k] or "0")
    return int(revision[i + 1:i + 4]), sp


class Bc95(Modem):
    NAME = "BC95"
    BOOT_LINES = ("REBOOTING", "Neul")
    BOOT_PREFIXES = ("REBOOT_CAUSE", "Boot: ")
    LINE_MAX = 3000             # an NSORF line with 1,472 bytes of hex
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
    IMEI_CMD = "AT+CGSN=1"
    PROBE = ("AT+CGSN=1", "+CGSN")
    IP_CMD = "AT+CGPADDR"
    PSM_URC_CMD = "AT+NPSMR=1"
    DNS_CMD = "AT+QDNS=0,%s"
    DNS_TIMEOUT_MS = 60000
    CLOSE_CMD = "AT+NSOCL=%d"
    SOCKETS = 7
    RESTART_CMD = "AT+NRB"
    # What +CCLK's time fields mean is not settled (manual: 27.007 local time; Hi2110 modules
    # are reported to show UTC): board.json "modem_clock" chooses, UTC by default.
    CCLK_UTC = True

    def __init__(self, uart, clock=SYSTEM, **kw):
        Modem.__init__(self, uart, clock, **kw)
        self.at.urc("+NSONMI", self._urc_nsonmi)
        self.at.urc("+NSOCLI", self._urc_nsocli)
        self.at.urc("+NPSMR", self._urc_npsmr)
        self.at.urc("+QDNS", self._urc_dns)

    @property
    def has_nsostf(self):
        return self.can("nsostf")

    def _firmware_has(self, what):
        fw = build(self.revision)
        if what == "nsonmi":
            # AT+NSONMI=<mode> is a BC95-G command (BC95-G&BC68 manual).
            return fw is None
        if fw is not None:
            for name, b, sp in _SINCE:
                if name == what:
                    return fw >= (b, sp)
        return True

    def _parse_revision(self, lines):
        # "SECURITY,<rev>", "PROTOCOL,<rev>", "APPLICATION,<rev>", "RADIO,..." (manual §3.5)
        for line in lines:
            if line.startswith("APPLICATION,"):
                return line[12:].strip()
        return Modem._parse_revision(self, lines)

    # -- URCs ----------------------------------------------------------------------------

    def _urc_nsonmi(self, line):
        f = fields(line)
        sock = self._socket_by_id(int(f[0]))
        if sock is None:
            return
        if len(f) == 2:
            sock.rx_pending = True  # mode 1: the length only, read with AT+NSORF
            return
        # Modes 2 and 3 carry the data (BC95-G, a module left so by another program):
        # "<s>,<ip>,<port>,<len>,<hex>" or "<s>,<len>,<hex>".
        if int(f[-2]) * 2 != len(f[-1]):
            raise ValueError("+NSONMI length")
        sock._deliver(binascii.unhexlify(f[-1]))

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
            if self.can("nccid") and self.query("AT+NCCID"):
                return
        except AtCommandError:
            self.learn("nccid", False)
        try:
            if self.query("AT+CIMI"):
                return
        except AtCommandError as e:
            raise SimError("no SIM answer to AT+NCCID or AT+CIMI (%s); insert or reseat the SIM"
                           % e)
        raise SimError("no SIM identity from AT+NCCID or AT+CIMI; insert or reseat the SIM")

    def cold_start(self):
        Modem.cold_start(self)
        # Mode 1 (length only, data kept for NSORF); a module left in mode 2 or 3 would put
        # the data in the URC (handled too, but the driver's receive path is NSORF).
        if self.can("nsonmi"):
            self._try("AT+NSONMI=1", "nsonmi")

    def _radio_up(self):
        # With AUTOCONNECT (default from B650, manual §3.13, §9.1) the module attaches by
        # itself and refuses both while it does so (FAQ §2.4, §2.6): only the query helps.
        self._try("AT+CFUN=1")
        self._try("AT+CGATT=1")

    def _read_settings(self, apn, bands):
        have_apn = have_bands = None
        try:
            if bands:
                have_bands = [int(b) for b in (self.query("AT+NBAND?") or "").split(",") if b]
            if apn:
                for line in self.cmd("AT+CGDCONT?"):
                    f = fields(line)
                    if f[0] == "0" and len(f) > 2:
                        have_apn = f[2]
        except (AtCommandError, ValueError):
            pass  # unknown: set it
        return have_apn, have_bands

    def _apply_settings(self, apn, bands):
        stopped = not self._try("AT+CFUN=0")
        if stopped:
            # Refused while AUTOCONNECT attaches: without it the module reboots with the radio
            # off, and the driver switches it on (_radio_up) from now on.
            self.cmd("AT+NCONFIG=AUTOCONNECT,FALSE")
            self._reboot()
        if bands:
            self.cmd(self.BAND_CMD + ",".join(str(b) for b in bands))
        if apn is not None:
            self.cmd(self.APN_CMD % apn)
        if bands:
            # AT+NBAND takes effect only after AT+NRB (manual §5.19, §9.1).
            self._reboot()
        self.cereg()
        if self.stat in (None, 0):
            self._radio_up()

    def _radio_off(self, power_down):
        if self._try("AT+CFUN=0"):
            return
        # Refused while AUTOCONNECT attaches, which is when a back-off needs it most.
        self.cmd("AT+NCONFIG=AUTOCONNECT,FALSE")
        self._reboot()

    def release(self):
        """AT+CNMPSD (BC95-G): the module releases the RRC connection now."""
        if not self.can("rai"):
            return False
        try:
            self.cmd("AT+CNMPSD")
            return True
        except AtCommandError as e:
            if e.code in (None, 4):
                self.learn("rai", False)
            return False

    # -- sockets -------------------------------------------------------------------------

    def _open(self, sock):
        try:
            lines = self.cmd("AT+NSOCR=DGRAM,17,0,1")
        except AtCommandError:
            lines = ()
        for line in lines:
            if line.isdigit():
                sock.id = int(line)
                return
        # mbed PR #7052: a bare OK without a socket number is a failure.
        raise SocketError("AT+NSOCR gave no socket number (all 7 in use?); close unused sockets")

    def _send_once(self, sock, data, release):
        hexdata = binascii.hexlify(data).upper()
        flags = release != RELEASE_NONE and self.can("nsostf")
        for attempt in range(BUSY_RETRIES + 2):
            if flags:
                head = "AT+NSOSTF=%d,%s,%d,0x%X,%d," % (sock.id, sock.ip, sock.port, release,
                                                       len(data))
            else:
                head = "AT+NSOST=%d,%s,%d,%d," % (sock.id, sock.ip, sock.port, len(data))
            try:
                lines = self.cmd(head, tail=hexdata, prefix="+NSOST")
                break
            except AtCommandError as e:
                if flags and e.code in (None, 4):
                    # Firmware before B656 has no NSOSTF: the same datagram goes out with
                    # NSOST on the same socket (a new socket would change the source port).
                    self.learn("nsostf", False)
                    flags = False
                    continue
                if e.code in (CME_UPLINK_BUSY, CME_UART_BUFFER) and attempt < BUSY_RETRIES:
                    self.clock.sleep_ms(BUSY_WAIT_MS)
                    continue
                raise
        for line in lines:
            f = line.split(",")
            if len(f) == 2 and f[0].strip() == str(sock.id):
                if number(f[1], "AT+NSOST") != len(data):
                    raise SocketError("BC95 accepted %s of %d bytes; datagram not sent whole"
                                      % (f[1], len(data)))
                return

    def _fetch(self, sock):
        # Each read asks for the largest datagram, so one answer is one whole datagram
        # whatever "remaining" counts (the datagram or the buffer, by firmware); mode 1
        # announces nothing new until the buffer is empty: read until an answer carries
        # no data line (modems.md §3.6, §3.9 item 4).
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
