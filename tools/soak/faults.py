"""Fault kinds of the soak, drawn per cycle (seeded). Each kind is a small class:

    name        stable name, used in the soak.fault.<name> counts
    prob        chance per cycle (scaled by --fault-rate)
    needs       what must exist for it to run (None, or an attribute the soak checks), so a
                kind that depends on another piece of the twin is skipped and listed
    begin(soak, rng)   sets the fault up before the boot; returns a note or None
    end(soak)          takes it away after the boot

Add a kind by writing a class and listing it in KINDS; soak.run() draws every kind whose
needs are met, every cycle.
"""
from tools.enos_server.policy import UNSUPPORTED

EXTRA_POINT = "pressure"  # a point the thing model does not define (EnOS: 1204)


class Fault:
    name = None
    prob = 0.0
    needs = None
    lasting = False  # the soak keeps it on for several cycles (an outage)

    def begin(self, soak, rng):
        return None

    def end(self, soak):
        pass


class Loss(Fault):
    """30 % of datagrams lost each way between the modem and the server."""
    name = "loss30"
    prob = 0.08

    def begin(self, soak, rng):
        for r in soak.relays:
            r.up.loss = r.down.loss = 0.3

    def end(self, soak):
        for r in soak.relays:
            r.up.loss = r.down.loss = 0.0


class Refusal(Fault):
    """The server answers an unsupported topic in one of the ways EnOS might (policy.py)."""
    name = "refusal"
    prob = 0.25

    def begin(self, soak, rng):
        p = soak.twin.policy
        p.unsupported = rng.choice(UNSUPPORTED)
        p.omit_id = rng.random() < 0.5
        return p.unsupported

    def end(self, soak):
        soak.twin.policy.unsupported = "4.04"
        soak.twin.policy.omit_id = False


class ResumeAccepted(Fault):
    """The server takes single thing.measurepoint.resume (EnOS's docs are ambiguous): a
    device that switched to post finds resume again at its next probe."""
    name = "resume_accepted"
    prob = 0.3

    def begin(self, soak, rng):
        soak.twin.policy.resume = "accept"

    def end(self, soak):
        soak.twin.policy.resume = "refuse"


class MissingPoint(Fault):
    """The reading has a point the thing model lacks: EnOS refuses it for good (1204)."""
    name = "missing_point"
    prob = 0.03

    def begin(self, soak, rng):
        soak.twin.boot_env["ENOSNB_SOAK_EXTRA"] = EXTRA_POINT

    def end(self, soak):
        soak.twin.boot_env.pop("ENOSNB_SOAK_EXTRA", None)


class ServerRestart(Fault):
    """The server restarts: DTLS sessions and /auth bindings are forgotten."""
    name = "server_restart"
    prob = 0.03

    def begin(self, soak, rng):
        soak.twin.restart_server()


class NatRebinding(Fault):
    """The carrier NAT (the emulator's, tools/modem_emulator/nat.py) forgets a binding after
    30 s idle: the wake comes from a new source port. Other cycles have no NAT timeout."""
    name = "nat_rebind_30s"
    prob = 0.3

    def begin(self, soak, rng):
        soak.twin.emu.nat.timeout = 30.0

    def end(self, soak):
        soak.twin.emu.nat.timeout = None


class ModemReboot(Fault):
    """The modem reboots while the firmware sends a datagram (before or after it left)."""
    name = "modem_reboot_mid_send"
    prob = 0.04

    def begin(self, soak, rng):
        cmd = "+CSOSEND" if soak.twin.board["modem"] == "sim7020" else "+NSOST"
        soak.twin.emu.reboot_on(cmd, send_first=rng.random() < 0.5)

    def end(self, soak):
        soak.twin.emu.clear_faults()


class RegistrationLoss(Fault):
    """The network drops the registration for 1 to 6 cycles: a backlog builds up."""
    name = "registration_loss"
    prob = 0.03
    lasting = True

    def begin(self, soak, rng):
        soak.twin.outage(True)
        return rng.randint(1, 6)

    def end(self, soak):
        soak.twin.outage(False)


class PowerOnResetMidOutage(Fault):
    """A power cut while the network is gone (the RTC restarts with no time to set it)."""
    name = "power_on_reset_mid_outage"
    prob = 0.25  # of the cycles of an outage

    def begin(self, soak, rng):
        if not soak.in_outage:
            return "skip"
        soak.kill = soak.random_kill(rng)
        return soak.kill


class PowerCut(Fault):
    """The supply fails at a random flash write or AT command line of the boot."""
    name = "power_cut"
    prob = 0.05

    def begin(self, soak, rng):
        soak.kill = soak.random_kill(rng)
        return soak.kill


class Unavailable(Fault):
    """The server answers 5.03 Service Unavailable for a few requests."""
    name = "unavailable_503"
    prob = 0.04

    def begin(self, soak, rng):
        soak.twin.policy.unavailable = rng.randint(1, 3)

    def end(self, soak):
        soak.twin.policy.unavailable = 0


class Malformed(Fault):
    """The server's JSON reply comes cut short."""
    name = "malformed_reply"
    prob = 0.04

    def begin(self, soak, rng):
        soak.twin.policy.malformed = 1

    def end(self, soak):
        soak.twin.policy.malformed = 0


class Drift(Fault):
    """The RTC drifts by 1-5 % in deep sleep (drawn again every cycle: always on)."""
    name = "rtc_drift"
    prob = 1.0

    def begin(self, soak, rng):
        soak.next_drift = rng.uniform(0.01, 0.05)


class NoNetworkTime(Fault):
    """The network gives no time (no NITZ): AT+CCLK? answers the module's default date."""
    name = "no_network_time"
    prob = 0.25

    def begin(self, soak, rng):
        emu = soak.twin.emu
        emu.nitz = emu.clock_synced = False

    def end(self, soak):
        emu = soak.twin.emu
        emu.nitz = emu.clock_synced = True


class SntpBlocked(Fault):
    """The SNTP server does not answer."""
    name = "sntp_blocked"
    prob = 0.25

    def begin(self, soak, rng):
        soak.sntp.blocked = True

    def end(self, soak):
        soak.sntp.blocked = False


KINDS = [Loss, Refusal, ResumeAccepted, MissingPoint, ServerRestart, NatRebinding, ModemReboot,
         RegistrationLoss, PowerOnResetMidOutage, PowerCut, Unavailable, Malformed, Drift,
         NoNetworkTime, SntpBlocked]
