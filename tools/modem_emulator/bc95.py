"""Quectel BC95 dialect (docs/modems.md §3, §10.4, §10.5, §10.6, §13; BC95 AT Commands Manual
V1.8, BC95 FAQ V1.4, BC95-G&BC68 AT Commands Manual).

No space after the colon, bare NSOCR/NSOST/NSOSTF/NSORF/CGSN/CIMI/NUESTATS responses,
socket lengths in bytes, unquoted IPs, `+NSONMI:<s>,<len>` sent only when the receive
buffer was empty (mode 1; BC95-G: modes 0-3, saved), NSORF with <remaining> and at most the
length asked, datagrams up to 1,472 bytes received, NSOSTF release-assistance flags with
+CSCON, REBOOTING + banner + OK on reboot, ERROR to everything for a while after boot,
NCONFIG surviving reboots, no URC ever inside a response.

Per firmware revision (manual V1.8 §2): NCONFIG and AUTOCONNECT (on by default) from B650,
NSOSTF from B656, CPSMS / CEDRXS / NCCID / CEREG=4 from B657SP1, ATE and NPSMR from B657SP2
(before that there is no echo at all). While AUTOCONNECT attaches, AT+CFUN and AT+CGATT=1
are refused (only queries work, FAQ §2.4, §2.6); AT+NBAND takes effect at the next AT+NRB.
A revision that is not a BC95-Bx one ("V150...", BC95-G) has every command and AT+NSONMI.
"""
import time

from .core import CmdError, ModemEmulator, Response, hexup, parse_hex, unquote

BANNER = ["Boot: Unsigned", "Security B.. Verified", "Protocol A.. Verified",
          "Apps A...... Verified", "{cause}", "Neul"]

CAUSES = {"nrb": "REBOOT_CAUSE_APPLICATION_AT", "power-on": "REBOOT_CAUSE_SECURITY_RESET_PIN",
          "spontaneous": "REBOOT_CAUSE_SECURITY_RESET_UNKNOWN"}

FLAG_RELEASE_NOW = 0x200
FLAG_RELEASE_AFTER_REPLY = 0x400

# revision="new" / "old" / "bc95g" select these; any other string is taken as it is.
REVISIONS = {"new": "V100R100C10B657SP3", "old": "V100R100C10B650",
             "bc95g": "V150R100C10B300SP2"}

# The first BC95-Bx firmware with each feature (manual V1.8 §2 implementation status).
SINCE = {"nconfig": (650, 0), "nsostf": (656, 0), "psm": (657, 1), "nccid": (657, 1),
         "ate": (657, 2), "npsmr": (657, 2)}


def firmware(revision):
    """(build, SP) of "V100R100C10B657SP2", or None for a revision that is not BC95-Bx."""
    if not revision.startswith("V100"):
        return None
    i = revision.find("B", 4)
    sp = revision.find("SP", i)
    return int(revision[i + 1:i + 4]), int(revision[sp + 2:]) if sp > 0 else 0


class Bc95Emulator(ModemEmulator):
    DIALECT = "bc95"
    SEP = ":"
    CME_FMT = "+CME ERROR:%s"
    MAX_SOCKETS = 7

    MAX_DOWNLINK = 1472             # manual §5.17

    def configure_dialect(self, early_error=2.0, autoconnect=True, bands=(8,),
                          revision="new", nsorf_remaining="message", nsonmi=1,
                          cclk="utc"):
        """early_error: seconds after boot during which every command answers ERROR.
        revision: "new" (B657SP3), "old" (B650), "bc95g" or a full revision string.
        nsorf_remaining: "message" (bytes left of the datagram being read; further datagrams
        are only found by another NSORF) or "buffer" (all bytes still buffered).
        nsonmi: the saved AT+NSONMI mode (BC95-G; its factory value is not documented).
        cclk: what +CCLK's time fields show, "utc" or "local" (27.007 wording; unverified)."""
        self.early_error = early_error
        self.revision = REVISIONS.get(revision, revision)
        self.fw = firmware(self.revision)
        self.nconfig = {"AUTOCONNECT": "TRUE" if autoconnect and self.has("nconfig") else "FALSE",
                        "CR_0354_0338_SCRAMBLING": "TRUE", "CR_0859_SI_AVOID": "TRUE",
                        "COMBINE_ATTACH": "FALSE", "CELL_RESELECTION": "TRUE", "ENABLE_BIP": "FALSE"}
        self.bands = list(bands)
        self.bands_active = list(bands)
        self.nsorf_remaining = nsorf_remaining
        self.nsonmi_mode = nsonmi
        self.cclk = cclk
        self.apn = ""
        self.ready_at = 0.0
        self.nsocr_no_id = 0
        if not self.has("psm"):
            self.CEREG_N = (0, 1, 2, 3)

    def has(self, feature):
        """Whether this firmware revision has the command or feature."""
        if feature == "nsonmi":
            return self.fw is None
        return self.fw is None or self.fw >= SINCE.get(feature, (0, 0))

    def reset_dialect_state(self):
        self.echo = self.has("ate")     # before B657SP2 there is no echo (FAQ §2.10)
        self.bands_active = list(self.bands)

    def active_bands(self):
        return self.bands_active

    def cfun_after_boot(self):
        return self.autoconnect

    @property
    def autoconnect(self):
        return self.nconfig.get("AUTOCONNECT") == "TRUE"

    def attaching(self):
        """AUTOCONNECT is attaching: AT+CFUN and AT+CGATT=1 are refused (FAQ §2.4, §2.6)."""
        return self.autoconnect and self.cfun == 1 and self.stat == 2

    def boot_output(self, reason):
        lines = BANNER if self.boot_lines is None else self.boot_lines
        cause = CAUSES.get(reason, CAUSES["spontaneous"])
        out = b"".join(self.frame(ln.replace("{cause}", cause)) for ln in lines)
        self._out(out + self.frame("OK"))
        self.ready_at = time.monotonic() + self.early_error
        if not self.cfun_after_boot():
            self.cfun = 0

    def dispatch(self, cmd):
        if time.monotonic() < self.ready_at:
            raise CmdError(None)
        need = {"+NSOSTF": "nsostf", "+CPSMS": "psm", "+CEDRXS": "psm", "+CEDRXRDP": "psm",
                "+NCCID": "nccid", "E0": "ate", "E1": "ate", "+NPSMR": "npsmr",
                "+NCONFIG": "nconfig", "+NSONMI": "nsonmi"}.get(cmd.name)
        if need is not None and not self.has(need):
            raise CmdError(4)
        return ModemEmulator.dispatch(self, cmd)

    def busy_commands(self):
        return [("+NSOST", 159)]      # matches NSOST and NSOSTF

    def socket_closed_urc(self, s, code=4):
        return self.p("+NSOCLI", str(s.id))

    def psm_enter_urc(self):
        return self.p("+NPSMR", "1")

    def psm_uart_wakes(self):
        return True             # UART data wakes it; the first character is lost (§3.7)

    def psm_exit_effects(self):
        self.echo = self.has("ate")
        if self.psm_urc:
            self._out(self.frame(self.p("+NPSMR", "0")))

    def nsocr_without_id(self, times=1):
        """The next `times` AT+NSOCR answer a bare OK with no socket id (mbed PR #7052)."""
        def f():
            self.nsocr_no_id += times
        self._call(f)

    def deliver(self, s, data, ip, port):
        was_empty = not s.rxbuf
        s.rxbuf.append([ip, port, bytearray(data)])
        if self.nsonmi_mode == 1 and was_empty:
            self.urc(self.p("+NSONMI", "%d,%d" % (s.id, len(data))))
        elif self.nsonmi_mode in (2, 3):
            s.rxbuf.pop()
            hx = hexup(data)
            if self.nsonmi_mode == 2:
                self.urc(self.p("+NSONMI", "%d,%s,%d,%d,%s" % (s.id, ip, port, len(data), hx)))
            else:
                self.urc(self.p("+NSONMI", "%d,%d,%s" % (s.id, len(data), hx)))

    # ---------------------------------------------------------------- basic commands

    def at_i(self, cmd):
        return Response(["Quectel", "BC95", "Revision:" + self.revision])

    def at__cgmr(self, cmd):
        return Response(["SECURITY," + self.revision, "PROTOCOL," + self.revision,
                         "APPLICATION," + self.revision, "RADIO,Hi15RM1-HLT_V1.0"])

    def at__cmee(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CMEE", str(self.cmee))])
        if cmd.kind == "set":
            n = cmd.int_arg(0)
            if n not in (0, 1):
                raise CmdError(50)
            self.cmee = n

    def at__nrb(self, cmd):
        resp = Response(["REBOOTING"], final=None)
        resp.after.append(lambda: self._reboot(reason="nrb"))
        return resp

    def at__nconfig(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+NCONFIG", "%s,%s" % kv) for kv in self.nconfig.items()])
        if cmd.kind == "set":
            if len(cmd.args) != 2:
                raise CmdError(50)
            key, value = unquote(cmd.args[0]).upper(), unquote(cmd.args[1]).upper()
            if key not in self.nconfig or value not in ("TRUE", "FALSE"):
                raise CmdError(50)
            self.nconfig[key] = value

    def at__nband(self, cmd):
        # Saved at once, in force after the next AT+NRB (manual §5.19, §9.1).
        if cmd.kind == "set" and self.cfun != 0:
            raise CmdError(None)
        return self.bands_command(cmd, "+NBAND")

    def at__qregswt(self, cmd):
        pass

    def at__cfun(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CFUN", str(self.cfun))])
        if cmd.kind == "set":
            n = cmd.int_arg(0)
            if n not in (0, 1):
                raise CmdError(50)
            if self.attaching():
                raise CmdError(3)
            if n == 0:
                self._radio_off()
            elif self.cfun != 1:
                if self.autoconnect:
                    self._radio_on()
                else:
                    self.cfun = 1       # the radio is on; AT+CGATT=1 attaches

    def at__cgatt(self, cmd):
        if cmd.kind == "set" and self.attaching():
            raise CmdError(3)
        if cmd.kind == "set" and cmd.arg(0) == "1" and self.cfun == 1 and self.stat == 0:
            self._radio_on()
            return None
        return ModemEmulator.at__cgatt(self, cmd)

    def at__nccid(self, cmd):
        return Response([self.p("+NCCID", self.iccid)])

    def at__cimi(self, cmd):
        if self.cfun != 1:
            raise CmdError(None)
        return Response([self.imsi])

    def at__cgdcont(self, cmd):
        if cmd.kind == "set":
            if len(cmd.args) >= 3:
                self.apn = unquote(cmd.args[2])
        elif cmd.kind == "query":
            return Response([self.p("+CGDCONT", '0,"IP","%s",,0,0,,,,,1' % self.apn)])

    def at__nuestats(self, cmd):
        return Response(["Signal power:-819", "Total power:-752", "TX power:230", "TX time:1234",
                         "RX time:5678", "Cell ID:27543062", "ECL:0", "SNR:234", "EARFCN:3734",
                         "PCI:282", "RSRQ:-108"])

    def at__cgpaddr(self, cmd):
        if self.registered:
            return Response([self.p("+CGPADDR", "0," + self.ip)])
        return Response()

    def at__qdns(self, cmd):
        if cmd.kind != "set" or len(cmd.args) < 2:
            raise CmdError(50)
        return self.resolve(unquote(cmd.args[1]), lambda ip: self.p("+QDNS", ip),
                            self.p("+QDNS", "QUERY_DNS_FAILED"))

    def at__cclk(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CCLK", self.clock_text(local=self.cclk == "local"))])
        raise CmdError(50)

    def at__npsmr(self, cmd):
        if cmd.kind == "set":
            self.psm_urc = cmd.arg(0) == "1"
        elif cmd.kind == "query":
            return Response([self.p("+NPSMR", "%d,%d" % (1 if self.psm_urc else 0, 1 if self.in_psm else 0))])

    def at__nptwedrxs(self, cmd):
        pass

    def at__natspeed(self, cmd):
        pass

    def at__cnmpsd(self, cmd):
        if self.fw is not None:
            raise CmdError(4)           # a BC95-G command
        resp = Response()
        resp.after.append(lambda: self._rrc_activity(release_after=self.release_delay) if self.rrc else None)
        return resp

    def at__nsonmi(self, cmd):
        # Saved: a module keeps the mode another program set (BC95-G&BC68 manual).
        return self.setting(cmd, "+NSONMI", "nsonmi_mode", (0, 1, 2, 3))

    # ---------------------------------------------------------------- sockets (§3.6)

    def at__nsocr(self, cmd):
        if cmd.kind != "set" or len(cmd.args) < 3:
            raise CmdError(50)
        if unquote(cmd.args[0]).upper() != "DGRAM" or cmd.int_arg(1) != 17:
            raise CmdError(4)
        if cmd.int_arg(2) == 5683:
            raise CmdError(3)          # reserved local port from B656SP2 (§3.6)
        if self.nsocr_no_id > 0:
            self.nsocr_no_id -= 1
            return Response()
        s = self.new_socket()
        return Response([str(s.id)])

    def _nsost(self, cmd, with_flag):
        s = self.get_socket(cmd)
        ip = cmd.arg(1, "")
        port = cmd.int_arg(2)
        i = 3
        flag = 0
        if with_flag:
            f = cmd.arg(3, "")
            try:
                flag = int(f, 16) if f.lower().startswith("0x") else int(f)
            except ValueError:
                raise CmdError(50)
            i = 4
        n = cmd.int_arg(i)
        hx = cmd.arg(i + 1, "")
        seq = cmd.arg(i + 2)
        if ip.startswith('"') or not ip or not (0 < port < 65536):
            raise CmdError(50)
        if n <= 0 or n > self.max_datagram or len(hx) != 2 * n:
            raise CmdError(50)
        data = parse_hex(hx)
        self.check_can_send(s)
        resp = Response(["%d,%d" % (s.id, n)])

        def after():
            self.uplink(s, ip, port, data)
            if flag & FLAG_RELEASE_NOW:
                self._rrc_activity(release_after=self.release_delay)
            if flag & FLAG_RELEASE_AFTER_REPLY:
                s.release_on_reply = True
            if seq is not None and seq != "":
                self.urc(self.p("+NSOSTR", "%d,%s,1" % (s.id, seq)))
        resp.after.append(after)
        return resp

    def at__nsost(self, cmd):
        return self._nsost(cmd, False)

    def at__nsostf(self, cmd):
        return self._nsost(cmd, True)

    def at__nsorf(self, cmd):
        s = self.get_socket(cmd)
        want = cmd.int_arg(1)
        if want <= 0:
            raise CmdError(50)
        if not s.rxbuf:
            return Response()
        entry = s.rxbuf[0]
        ip, port, data = entry
        chunk = bytes(data[:want])
        del data[:want]
        if not data:
            s.rxbuf.pop(0)
        if self.nsorf_remaining == "buffer":
            remaining = sum(len(e[2]) for e in s.rxbuf)
        else:
            remaining = len(data)
        hx = hexup(chunk)
        return Response(["%d,%s,%d,%d,%s,%d" % (s.id, ip, port, len(chunk), hx, remaining)])

    def at__nsocl(self, cmd):
        self.close_socket(cmd)
