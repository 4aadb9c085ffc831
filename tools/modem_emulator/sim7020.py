"""SIMCom SIM7020 dialect (docs/modems.md §2, §10.2, §10.3, §10.6, §13; SIM7020 Series AT
Command Manual V1.05, Low Power Mode and TCPIP application notes V1.05, Hardware Design V1.02).

One space after the colon, bare CIMI/CGSN (and CCID unless ccid_prefixed), socket lengths
in hex characters, `+CSONMI: <id>,<hexlen>,<HEX>` carrying the data, URCs possibly between
the information lines and `OK`, the boot banner RDY / +CFUN: 1 / +CPIN: READY / SMS Ready,
AT+CFUN=0 answered by +CPIN: NOT READY, CSORCVFLAG kept across reboots, AT+CGSN=1 refused
(only the execution form is documented), AT+CCLK? in UTC or local time as AT+CURTC says,
+CLTS/+CTZV after NITZ when AT+CLTS=1, release assistance with AT+CNBIOTRAI (no AT+CNMPSD),
and autobaud (AT+IPR=0) that costs the first command after a PSM wake until a rate is fixed.
"""
import time

from .core import CmdError, ModemEmulator, Response, hexup, parse_hex, unquote

BANNER = ["RDY", "+CFUN: 1", "+CPIN: READY", "SMS Ready"]


class Sim7020Emulator(ModemEmulator):
    DIALECT = "sim7020"
    CEREG_PSM = ',"00",,,"%s","%s"'     # as in SIMCom's own +CEREG: 4,... example

    def configure_dialect(self, revision="1910B05SIM7020G", ccid_prefixed=False,
                          csosend_length="hex", sim_present=True, bands=(1, 3, 5, 8, 20, 28),
                          curtc=0, cgsn_set=False, ipr=0):
        """csosend_length: "hex" (hex characters, the default), "bytes", or "any" (§2.8.1).
        curtc: the factory AT+CURTC (0: +CCLK shows UTC after NITZ, 1: the RTC's local time);
        not documented, so both can be chosen. cgsn_set: accept AT+CGSN=1 as some firmware
        does. ipr: the saved baud rate setting, 0 = autobaud (factory)."""
        self.revision = revision
        self.ccid_prefixed = ccid_prefixed
        self.csosend_length = csosend_length
        self.sim_present = sim_present
        self.bands = list(bands)
        self.curtc_factory = curtc
        self.cgsn_set = cgsn_set
        self.ipr = ipr
        self.apn = ""
        self.rcvflag = 0            # kept across reboots (manual: AT+CSORCVFLAG is saved)
        self.cpsmstatus = False
        self.curtc = curtc
        self.clts = False
        self.rai_next = 0
        self.autobaud_sync = False

    def reset_dialect_state(self):
        self.cpsmstatus = False
        self.curtc = self.curtc_factory
        self.clts = False
        self.rai_next = 0
        self.autobaud_sync = False

    def boot_output(self, reason):
        lines = BANNER if self.boot_lines is None else self.boot_lines
        for ln in lines:
            self._out(self.frame(ln))

    def urc_may_go_inside(self):
        if self.urc_inside is not None:
            return bool(self.urc_inside)
        return self.urc_inside_prob > 0 and self.rng.random() < self.urc_inside_prob

    def busy_commands(self):
        return [("+CSODSEND", 516), ("+CSOSEND", 516)]

    def socket_closed_urc(self, s, code=4):
        return self.p("+CSOERR", "%d,%d" % (s.id, code))

    def psm_enter_urc(self):
        return self.p("+CPSMSTATUS", '"ENTER PSM"')

    def psm_uart_wakes(self):
        return False            # UART is dead in PSM; only PWRKEY wakes it (§2.6)

    def psm_exit_effects(self):
        self.rcvflag = 0
        # Autobaud: the module measures the rate on the first "AT" it gets and does not
        # answer it; a fixed rate (AT+IPR=<rate>) needs no such sync.
        self.autobaud_sync = self.ipr == 0
        self._out(self.frame(self.p("+CPIN", "READY")))
        if self.cpsmstatus:
            self._out(self.frame(self.p("+CPSMSTATUS", '"EXIT PSM"')))

    def swallow_line(self, text):
        if self.autobaud_sync:
            self.autobaud_sync = False
            return True
        return False

    def nitz_received(self):
        if self.clts:
            self.urc(self.p("+CTZV", "%+03d" % self.tz))
            self.urc(self.p("+CLTS", '"%s"' % self.clock_text(local=True)))

    def deliver(self, s, data, ip, port):
        if self.rcvflag:
            head = self.p("+CSONMI", "%d,%d," % (s.id, len(data))).encode()
            self.urc(b"\r\n" + head + data + b"\r\n")
        else:
            hx = hexup(data)
            self.urc(self.p("+CSONMI", "%d,%d,%s" % (s.id, len(hx), hx)))

    # ---------------------------------------------------------------- basic commands

    def at_i(self, cmd):
        return Response(["SIMCOM_Ltd", "SIMCOM_SIM7020G", "Revision:" + self.revision])

    def at__cmee(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CMEE", str(self.cmee))])
        if cmd.kind == "test":
            return Response([self.p("+CMEE", "(0-2)")])
        n = cmd.int_arg(0)
        if n not in (0, 1, 2):
            raise CmdError(50)
        self.cmee = n

    def at__cgmr(self, cmd):
        return Response(["Revision:" + self.revision])

    def at__cpin(self, cmd):
        if not self.sim_present:
            raise CmdError(10)
        if cmd.kind == "query":
            # The SIM is switched off with the radio (AT+CFUN=0).
            return Response([self.p("+CPIN", "READY" if self.cfun == 1 else "NOT READY")])

    def at__ccid(self, cmd):
        if not self.sim_present:
            raise CmdError(10)
        return Response([self.p("+CCID", self.iccid) if self.ccid_prefixed else self.iccid])

    def at__cimi(self, cmd):
        if not self.sim_present:
            raise CmdError(10)
        return Response([self.imsi])

    def at__cgsn(self, cmd):
        if cmd.kind == "test":
            return Response()
        if cmd.kind == "set" and not self.cgsn_set:
            raise CmdError(50)      # manual §3.2.6 documents AT+CGSN and AT+GSN only
        return ModemEmulator.at__cgsn(self, cmd)

    def at__gsn(self, cmd):
        return Response([self.imei])

    def at__cfun(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CFUN", str(self.cfun))])
        if cmd.kind == "test":
            return Response([self.p("+CFUN", "(0,1),(0,1)")])
        n = cmd.int_arg(0)
        if n == 0:
            # Low Power Mode AN §6.1.2: the SIM goes with the radio, announced before OK.
            was_on = self.cfun == 1
            self._radio_off()
            return Response([self.p("+CPIN", "NOT READY")] if was_on else [])
        if n == 1:
            resp = Response()
            if self.cfun != 1:
                resp.after.append(self._cfun_on)
            return resp
        raise CmdError(50)

    def _cfun_on(self):
        self.cfun = 1
        self._at(self.cpin_delay, self._cpin_then_register, self.radio_gen)

    def _cpin_then_register(self, radio_gen):
        if radio_gen != self.radio_gen:
            return  # switched off again before the SIM was ready
        self.urc(self.p("+CPIN", "READY"))
        self._radio_on()

    def at__mcgdefcont(self, cmd):
        if cmd.kind == "set":
            if len(cmd.args) < 2:
                raise CmdError(50)
            self.apn = unquote(cmd.args[1])
        elif cmd.kind == "query":
            return Response([self.p("*MCGDEFCONT", '"IP","%s"' % self.apn)])

    def at__cband(self, cmd):
        return self.bands_command(cmd, "+CBAND")

    def at__cgreg(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CGREG", "0,%d" % self.stat)])

    def at__cgpaddr(self, cmd):
        if self.registered:
            return Response([self.p("+CGPADDR", '1,"%s"' % self.ip)])
        return Response()

    def at__cgcontrdp(self, cmd):
        if self.registered:
            return Response([self.p("+CGCONTRDP", '1,5,"%s","%s.255.255.255.0"' % (self.apn, self.ip))])
        return Response()

    def at__cops(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+COPS", '0,2,"46000",9' if self.registered else "0")])

    def at__cdnsgip(self, cmd):
        if cmd.kind != "set":
            raise CmdError(50)
        host = unquote(cmd.arg(0, ""))
        return self.resolve(host, lambda ip: self.p("+CDNSGIP", '1,"%s","%s"' % (host, ip)),
                            self.p("+CDNSGIP", "0,8"))

    def at__cpsmstatus(self, cmd):
        if cmd.kind == "set":
            self.cpsmstatus = cmd.arg(0) == "1"
            self.psm_urc = self.cpsmstatus

    def at__csclk(self, cmd):
        if cmd.kind == "set":
            n = cmd.int_arg(0)
            if n not in (0, 1, 2):
                raise CmdError(50)
            self.csclk = n
            self.last_activity = time.monotonic()
        elif cmd.kind == "query":
            return Response([self.p("+CSCLK", str(self.csclk))])

    def at__retention(self, cmd):
        pass

    def at__ipr(self, cmd):
        return self.setting(cmd, "+IPR", "ipr",
                            (0, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600))

    def at__curtc(self, cmd):
        return self.setting(cmd, "+CURTC", "curtc", (0, 1))

    def at__cclk(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CCLK", self.clock_text(local=self.curtc == 1))])
        raise CmdError(50)

    def at__clts(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CLTS", "1" if self.clts else "0")])
        if cmd.kind == "set":
            self.clts = cmd.arg(0) == "1"

    def at__cnbiotrai(self, cmd):
        # Release assistance for the next uplink only (manual §5.2.27): 1 = no uplink or
        # downlink follows, 2 = only one downlink follows.
        return self.setting(cmd, "+CNBIOTRAI", "rai_next", (0, 1, 2))

    def at__cgdcont(self, cmd):
        pass

    def at__cgact(self, cmd):
        pass

    def at__cpowd(self, cmd):
        resp = Response(["NORMAL POWER DOWN"], final=None)
        resp.after.append(self._power_down)
        return resp

    def at__creset(self, cmd):
        resp = Response()
        resp.after.append(lambda: self._reboot(reason="creset"))
        return resp

    at__reset = at__creset

    # ---------------------------------------------------------------- sockets (§2.5)

    def at__csorcvflag(self, cmd):
        return self.setting(cmd, "+CSORCVFLAG", "rcvflag", (0, 1))

    def at__csoc(self, cmd):
        if cmd.kind != "set":
            raise CmdError(50)
        domain, typ, proto = cmd.int_arg(0), cmd.int_arg(1), cmd.int_arg(2, 1)
        if (domain, typ, proto) != (1, 2, 1):
            raise CmdError(4)          # the emulator carries UDP over IPv4 only
        s = self.new_socket()
        return Response([self.p("+CSOC", str(s.id))])

    def at__csocon(self, cmd):
        s = self.get_socket(cmd)
        port = cmd.int_arg(1)
        ip = unquote(cmd.arg(2, ""))
        if not ip or not (0 < port < 65536):
            raise CmdError(50)
        s.remote = (ip, port)

    def at__csosend(self, cmd):
        s = self.get_socket(cmd)
        n = cmd.int_arg(1)
        payload = cmd.arg(2, "")
        if n == 0:
            if not (payload.startswith('"') and payload.endswith('"')):
                raise CmdError(50)
            data = unquote(payload).encode("latin-1")
        else:
            if self.csosend_length == "hex":
                ok = n == len(payload)
            elif self.csosend_length == "bytes":
                ok = n * 2 == len(payload)
            else:
                ok = n in (len(payload), len(payload) // 2)
            if not ok or len(payload) % 2:
                raise CmdError(None)       # §10.2: a length mismatch answers plain ERROR
            data = parse_hex(payload)
        self._send(s, data)

    def _send(self, s, data):
        if s.remote is None:
            raise CmdError(3)
        if len(data) > self.max_datagram or not data:
            raise CmdError(50)
        self.check_can_send(s)
        self.uplink(s, s.remote[0], s.remote[1], data)
        rai, self.rai_next = self.rai_next, 0
        if rai == 1:
            self._rrc_activity(release_after=self.release_delay)
        elif rai == 2:
            s.release_on_reply = True

    def at__csodsend(self, cmd):
        s = self.get_socket(cmd)
        n = cmd.int_arg(1)
        if not (0 < n <= self.max_datagram) or s.remote is None:
            raise CmdError(50)
        self.check_can_send(s)
        resp = Response(final=None)
        resp.raw(b"> ")
        resp.after.append(lambda: self._expect_raw(n, lambda data: self._dsend_done(s, data)))
        return resp

    def _expect_raw(self, n, cb):
        self._raw_expect = (n, cb)
        self._raw_got = b""

    def _dsend_done(self, s, data):
        try:
            self._send(s, data)
        except CmdError as e:
            self._out(self.frame(self.error_text(e.code)))
            return
        self._out(self.frame("DATA ACCEPT: %d" % len(data)) + self.frame("OK"))

    def at__csostatus(self, cmd):
        s = self.get_socket(cmd)
        state = 0 if s.closed_by_network else (2 if s.remote else 1)
        return Response([self.p("+CSOSTATUS", "%d,%d" % (s.id, state))])

    def at__csocl(self, cmd):
        self.close_socket(cmd)
