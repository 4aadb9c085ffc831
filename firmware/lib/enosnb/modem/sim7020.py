"""SIMCom SIM7020 driver (spec/modems.md §2, §10.2, §10.3; SIM7020 AT Command Manual and
TCPIP Application Note: CSOC/CSOCON/CSOSEND/CSONMI/CSOERR/CSORCVFLAG, CPSMS).

Warm bring-up (module already registered): AT, ATE0, AT+CMEE=1, AT+CEREG=1, AT+CEREG?,
AT+CSORCVFLAG=0, AT+CSOC=1,2,1, AT+CSOCON=..., AT+CSOSEND=... (9 commands).
Cold: adds AT+CPIN?, AT+CFUN=0, AT+CBAND, AT*MCGDEFCONT, AT+CFUN=1 and AT+CEREG? polling.

Data is hex in both directions (CSORCVFLAG=0, re-issued after every reboot and PSM exit);
lengths count hex characters. URCs may arrive inside any command's response.
"""
import binascii

from enosnb.clock import SYSTEM
from enosnb.modem.at import payload
from enosnb.modem.base import Modem, fields
from enosnb.modem.errors import AtCommandError, ModemError, SimError, SocketError


class Sim7020(Modem):
    NAME = "SIM7020"
    BOOT_LINES = ("RDY", "NORMAL POWER DOWN")
    PSM_WAKE_PULSE_MS = 800
    PSM_WAKE_MS = 10000
    TIMEOUTS = {
        "AT+CFUN": 10000,
        "AT*MCGDEFCONT": 10000,
        "AT+CSOCON": 10000,
        "AT+CSOSEND": 5000,
        "AT+CSOC=": 5000,
        "AT+CGCONTRDP": 10000,
        "AT+CPSMS": 5000,
    }
    IGNORED_URCS = ("+CLTS", "+CTZV", "+CSCON")
    BAND_CMD = "AT+CBAND="
    APN_CMD = 'AT*MCGDEFCONT="IP","%s"'
    ICCID_CMD = "AT+CCID"      # answered with or without a "+CCID:" prefix
    IP_CMD = "AT+CGPADDR=1"
    PSM_URC_CMD = "AT+CPSMSTATUS=1"
    DNS_CMD = 'AT+CDNSGIP="%s"'
    CLOSE_CMD = "AT+CSOCL=%d"

    def __init__(self, uart, clock=SYSTEM, **kw):
        Modem.__init__(self, uart, clock, **kw)
        self._rcvflag = False
        self._expect_cpin = False
        self.at.urc("+CPIN", self._urc_cpin)
        self.at.urc("+CSONMI", self._urc_csonmi)
        self.at.urc("+CSOERR", self._urc_csoerr)
        self.at.urc("+CPSMSTATUS", self._urc_psm)
        self.at.urc("+CDNSGIP", self._urc_dns)

    # -- URCs ----------------------------------------------------------------------------

    def _urc_cpin(self, line):
        # After CFUN=1 the module announces +CPIN: READY; at any other time it means a boot.
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
        f = fields(line)
        if int(f[1]) == 4:
            self._net_closed(int(f[0]))

    def _urc_psm(self, line):
        if "ENTER PSM" in line:
            self._psm_changed(True)
        elif "EXIT PSM" in line:
            self._psm_changed(False)

    def _leave_psm(self):
        # The UART is dead in PSM (spec §2.6): a PWRKEY pulse wakes the module, which then
        # announces +CPIN: READY and "EXIT PSM".
        if self.pwrkey is not None:
            self._expect_cpin = True
            self.pulse_pwrkey(self.PSM_WAKE_PULSE_MS)
            self.at.poll(self.PSM_WAKE_MS, lambda: not self.in_psm)
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
        self._rcvflag = False

    # -- bring-up ------------------------------------------------------------------------

    def check_sim(self):
        try:
            state = self.query("AT+CPIN?", 5000)
        except AtCommandError as e:
            raise SimError("SIM check failed (%s); insert or reseat the SIM" % e)
        if state != "READY":
            raise SimError("SIM not ready (+CPIN: %s); unlock it or use a SIM without PIN"
                           % state)

    def _radio_up(self):
        self._expect_cpin = True
        self.cmd("AT+CFUN=1")

    def _reinit(self):
        Modem._reinit(self)
        self.cmd("AT+CSORCVFLAG=0")
        self._rcvflag = True
        # PSM may or may not keep the sockets (spec §2.6): keep only the connected ones.
        for s in self.sockets:
            if s.id is not None:
                f = fields("+CSOSTATUS:" + (self.query("AT+CSOSTATUS=%d" % s.id) or ""))
                if len(f) < 2 or f[1] != "2":
                    self._drop_socket(s)

    # -- sockets -------------------------------------------------------------------------

    def _open(self, sock):
        if not self._rcvflag:
            self.cmd("AT+CSORCVFLAG=0")
            self._rcvflag = True
        sid = self.query("AT+CSOC=1,2,1")
        if sid is None or not sid.isdigit():
            raise SocketError("AT+CSOC gave no socket id (all 5 in use?); close unused sockets")
        sock.id = int(sid)
        try:
            self.cmd('AT+CSOCON=%d,%d,"%s"' % (sock.id, sock.port, sock.ip))
        except ModemError:
            self._drop_socket(sock)
            raise

    def _send_once(self, sock, data, release):
        hexdata = binascii.hexlify(data).upper()
        self.cmd("AT+CSOSEND=%d,%d," % (sock.id, len(hexdata)), tail=hexdata)
