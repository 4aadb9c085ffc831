"""SIMCom SIM7020 driver (modems.md §2, §10.2, §10.3; SIM7020 Series AT Command Manual V1.05,
TCPIP and Low Power Mode application notes V1.05, Hardware Design V1.02).

Wake bring-up (module registered): AT, ATE0, AT+CMEE=1, AT+CEREG=4, AT+CEREG?,
AT+CSORCVFLAG=0, AT+CSOC=1,2,1, AT+CSOCON=..., AT+CSOSEND=... (9 commands).
Not registered: AT+CPIN?, then only what differs (AT+CFUN=0 answered by +CPIN: NOT READY,
AT+CBAND, AT*MCGDEFCONT, AT+CFUN=1 answered later by +CPIN: READY) and AT+CEREG? polling.

Data is hex in both directions (CSORCVFLAG=0, re-issued on every wake); lengths count hex
characters. URCs may arrive inside any command's response. The IMEI comes from the execution
form AT+CGSN (manual §3.2.6; AT+CGSN=1 is not documented); release assistance is
AT+CNBIOTRAI before the last uplink (manual §5.2.27); AT+CCLK? shows UTC once AT+CURTC=0.
"""
import binascii

from micropython import const

from enosnb.clock import SYSTEM
from enosnb.modem.at import payload
from enosnb.modem.base import RELEASE_NONE, RELEASE_NOW, Modem, fields
from enosnb.modem.errors import AtCommandError, ModemError, SimError, SocketError

# Hardware Design V1.02 tables 8 and 9: PWRKEY low for 0.8 s or more powers the module off,
# so a pulse meant to wake it from PSM stays well below that.
PSM_WAKE_MAX_MS = const(600)


def _imei_line(line):
    return line.isdigit() and 14 <= len(line) <= 17


def _bands(text):
    return [int(b) for b in text.split(",") if b.strip()]


class Sim7020(Modem):
    NAME = "SIM7020"
    BOOT_LINES = ("RDY", "NORMAL POWER DOWN")
    QUIET_LINES = ("SMS Ready",)
    PSM_WAKE_MS = 10000
    TIMEOUTS = {
        "AT+CFUN": 10000,
        "AT*MCGDEFCONT": 10000,
        "AT+CSOCON": 10000,
        "AT+CSOSEND": 5000,
        "AT+CSOC=": 5000,
        "AT+CGCONTRDP": 10000,
        "AT+CPSMS": 5000,
        "AT+CPOWD": 5000,
        "AT+CRESET": 5000,
    }
    IGNORED_URCS = ("+CSCON", "+CFUN")
    BAND_CMD = "AT+CBAND="
    APN_CMD = 'AT*MCGDEFCONT="IP","%s"'
    ICCID_CMD = "AT+CCID"      # answered with or without a "+CCID:" prefix
    IMEI_CMD = "AT+CGSN"       # bare IMEI (manual §3.2.6)
    PROBE = ("AT+CGSN", _imei_line)
    IP_CMD = "AT+CGPADDR=1"
    PSM_URC_CMD = "AT+CPSMSTATUS=1"
    DNS_CMD = 'AT+CDNSGIP="%s"'
    CLOSE_CMD = "AT+CSOCL=%d"
    SOCKETS = 5
    RESTART_CMD = "AT+CRESET"
    CCLK_UTC = True            # after AT+CURTC=0 (see _clock_setup)

    def __init__(self, uart, clock=SYSTEM, **kw):
        kw.pop("cclk_utc", None)  # AT+CURTC=0 makes +CCLK UTC
        Modem.__init__(self, uart, clock, **kw)
        self._rcvflag = False
        self._expect_cpin = False
        self._curtc = False
        self._clts = None
        self.sim_ready = None
        self.socket_errors = 0
        self.at.urc("+CPIN", self._urc_cpin)
        self.at.urc("+CSONMI", self._urc_csonmi)
        self.at.urc("+CSOERR", self._urc_csoerr)
        self.at.urc("+CPSMSTATUS", self._urc_psm)
        self.at.urc("+CDNSGIP", self._urc_dns)
        self.at.urc("+CLTS", self._urc_clts)
        self.at.urc("+CTZV", self._urc_ctzv)

    # -- URCs ----------------------------------------------------------------------------

    def _urc_cpin(self, line):
        # AT+CFUN=0 answers +CPIN: NOT READY before its OK (Low Power Mode AN §6.1.2): the
        # SIM is off with the radio, not a reboot. +CPIN: READY follows AT+CFUN=1, a boot
        # banner and a PSM exit; at any other time it means the module rebooted.
        ready = payload(line).strip() == "READY"
        self.sim_ready = ready
        if not ready:
            return
        if self._expect_cpin:
            self._expect_cpin = False
        else:
            self.at.note_reboot(line)

    def _urc_csonmi(self, line):
        f = payload(line).split(",")
        sock = self._socket_by_id(int(f[0]))
        hexdata = f[2].strip()
        if sock is None or int(f[1]) != len(hexdata):
            self.at.bad_urcs += 1
            return
        sock._deliver(binascii.unhexlify(hexdata))

    def _urc_csoerr(self, line):
        # 4 is "connected error", the socket is gone; 1, 2, 3 and 11 also occur (modems.md
        # §2.4) and leave it usable as far as anyone knows: counted only.
        f = fields(line)
        if int(f[1]) == 4:
            self._net_closed(int(f[0]))
        else:
            self.socket_errors += 1

    def _urc_psm(self, line):
        if "ENTER PSM" in line:
            self._psm_changed(True)
        elif "EXIT PSM" in line:
            self._psm_changed(False)

    def _urc_clts(self, line):
        # Network time pushed after AT+CLTS=1 (local time and zone, like 27.007 +CCLK); kept
        # with the tick it came at, for when AT+CCLK? has none.
        from enosnb.modem.nettime import parse_time
        t = parse_time(payload(line))
        if t is not None:
            self._clts = (self.clock.ticks_ms(), t[0] - t[1] * 900)
            self.tz_quarters = t[1]

    def _urc_ctzv(self, line):
        self.tz_quarters = int(fields(line)[0])

    def _leave_psm(self):
        # The UART is dead in PSM (modems.md §2.6): a PWRKEY pulse wakes the module, which
        # then announces +CPIN: READY and "EXIT PSM". A module that already woke (for a TAU)
        # must not take the pulse for a power-off: it stays below the 0.8 s minimum.
        if self.pwrkey is not None:
            self._expect_cpin = True
            self.pulse_pwrkey(min(self.pwrkey_ms, PSM_WAKE_MAX_MS))
            try:
                # It answers once awake, whether the pulse woke it or it was awake already.
                self.at.sync(max(1, self.PSM_WAKE_MS // self.SYNC_INTERVAL_MS),
                             self.SYNC_INTERVAL_MS)
            except ModemError:
                pass  # the re-initialisation that follows tries harder
        Modem._leave_psm(self)

    def _set_stat(self, stat):
        Modem._set_stat(self, stat)
        if self.registered:
            # +CPIN: READY precedes registration; after it, another one means a reboot.
            self._expect_cpin = False

    def _urc_dns(self, line):
        f = fields(line)
        self._dns = f[2] if f[0] == "1" and len(f) > 2 else ""

    def _rebooted_hook(self):
        # The boot banner goes on with +CFUN: 1, +CPIN: READY and SMS Ready.
        self._rcvflag = False
        self._curtc = False
        self._expect_cpin = True

    # -- bring-up ------------------------------------------------------------------------

    def check_sim(self):
        try:
            state = self.query("AT+CPIN?", 5000)
        except AtCommandError as e:
            raise SimError("SIM check failed (%s); insert or reseat the SIM" % e)
        if state == "NOT READY" and self.query("AT+CFUN?") == "0":
            return  # the SIM sleeps with the radio (AT+CFUN=0); it wakes with AT+CFUN=1
        if state != "READY":
            raise SimError("SIM not ready (+CPIN: %s); unlock it or use a SIM without PIN"
                           % state)

    def _radio_up(self):
        self._expect_cpin = True
        self.cmd("AT+CFUN=1")

    def _read_settings(self, apn, bands):
        have_apn = have_bands = None
        try:
            if bands:
                have_bands = _bands(self.query("AT+CBAND?") or "")
            if apn:
                f = fields("*:" + (self.query("AT*MCGDEFCONT?") or ""))
                have_apn = f[1] if len(f) > 1 else None
        except (AtCommandError, ValueError):
            pass  # unknown: set it
        return have_apn, have_bands

    def _apply_settings(self, apn, bands):
        # Bands and the attach APN take effect with the radio off (modems.md §2.2).
        self.cmd("AT+CFUN=0")
        if bands:
            self.cmd(self.BAND_CMD + ",".join(str(b) for b in bands))
        if apn is not None:
            self.cmd(self.APN_CMD % apn)
        self._radio_up()

    def _radio_off(self, power_down):
        if power_down:
            # NORMAL POWER DOWN, then silence: the next power_on() pulses PWRKEY.
            self.cmd("AT+CPOWD=1", final="NORMAL POWER DOWN")
        else:
            self.cmd("AT+CFUN=0")

    def _reinit(self):
        Modem._reinit(self)
        self.cmd("AT+CSORCVFLAG=0")
        self._rcvflag = True
        # PSM may or may not keep the sockets (modems.md §2.6): keep only the connected ones.
        for s in self.sockets:
            if s.id is not None:
                f = fields("+CSOSTATUS:" + (self.query("AT+CSOSTATUS=%d" % s.id) or ""))
                if len(f) < 2 or f[1] != "2":
                    self._drop_socket(s)

    def _before_psm(self):
        # The factory rate is autobaud (AT+IPR=0); every SIMCom PSM example fixes it first,
        # so the module needs no new sync after each wake (modems.md §2.1).
        if self.baudrate and self.can("ipr"):
            self._try("AT+IPR=%d" % self.baudrate, "ipr")

    # -- time ----------------------------------------------------------------------------

    def _clock_setup(self):
        # AT+CURTC=0: "CCLK show UTC time after network time synchronization" (manual
        # V1.05); the factory value is not documented, so it is set, once per session.
        if not self._curtc and self.can("curtc"):
            self._curtc = self._try("AT+CURTC=0", "curtc")

    def _urc_time(self):
        if self._clts is None:
            return None
        from enosnb.modem.nettime import datetime
        tick, secs = self._clts
        return datetime(secs + self.clock.ticks_diff(self.clock.ticks_ms(), tick) // 1000)

    # -- sockets -------------------------------------------------------------------------

    def _open(self, sock):
        if not self._rcvflag:
            self.cmd("AT+CSORCVFLAG=0")
            self._rcvflag = True
        try:
            sid = self.query("AT+CSOC=1,2,1")
        except AtCommandError:
            sid = None
        if sid is None or not sid.isdigit():
            raise SocketError("AT+CSOC gave no socket id (all 5 in use?); close unused sockets")
        sock.id = int(sid)
        try:
            self.cmd('AT+CSOCON=%d,%d,"%s"' % (sock.id, sock.port, sock.ip))
        except ModemError:
            self._drop_socket(sock)
            raise

    def _send_once(self, sock, data, release):
        if release != RELEASE_NONE and self.can("rai"):
            # Release assistance for the next uplink only (manual §5.2.27): 1 = nothing
            # follows, 2 = one reply follows. PSM after about 4 s instead of 20 s (LPM AN).
            self._try("AT+CNBIOTRAI=%d" % (1 if release == RELEASE_NOW else 2), "rai")
        hexdata = binascii.hexlify(data).upper()
        self.cmd("AT+CSOSEND=%d,%d," % (sock.id, len(hexdata)), tail=hexdata)
