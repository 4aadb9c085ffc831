"""Fault kinds of the soak, drawn per cycle (seeded). Each kind is a small class:

    name        stable name, used in the soak.fault.<name> counts
    prob        chance per cycle (scaled by --fault-rate)
    needs       what must exist for it to run (None, or an attribute the soak checks), so a
                kind that depends on another piece of the twin is skipped and listed
    lasting     kept on for the number of cycles begin() returns (an outage)
    lasts_s     kept on for that long in simulated time (the twin's clock, deep sleeps
                included): every boot that starts inside the window has the fault
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
    lasts_s = None   # or for this long in simulated seconds

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
        soak.block_registration(self.name)
        return rng.randint(1, 6)

    def end(self, soak):
        soak.unblock_registration(self.name)


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


class ServerSilent(Fault):
    """The server answers nothing for one simulated hour: the modem emulator sends the
    datagrams for its CoAP and DTLS ports into a sink that never replies (an EnOS front end
    down, a black-holed route). Every boot in that hour must give up within its budget, back
    off and deep-sleep, its reading queued for later."""
    name = "server_silent_1h"
    prob = 0.01
    lasts_s = 3600

    def begin(self, soak, rng):
        soak.silence_server(True)

    def end(self, soak):
        soak.silence_server(False)


class AttachSlow(Fault):
    """The modem needs 5 simulated minutes to register (deep coverage, a congested cell),
    longer than the attach budget: the network drops the registration as the fault begins
    and takes it back 5 minutes later by the twin's clock, across the deep sleep (the
    emulator's own timers run in host time, which skips most of each sleep)."""
    name = "attach_5min"
    prob = 0.02
    lasts_s = 300

    def begin(self, soak, rng):
        soak.block_registration(self.name)

    def end(self, soak):
        soak.unblock_registration(self.name)


# Faults whose boots must still end in deep sleep within the cycle budget, backing off: the
# soak's energy check (soak.fault.<name>.* figures).
ENERGY_KINDS = ("server_silent_1h", "attach_5min")

KINDS = [Loss, Refusal, ResumeAccepted, MissingPoint, ServerRestart, NatRebinding, ModemReboot,
         RegistrationLoss, PowerOnResetMidOutage, PowerCut, Unavailable, Malformed, Drift,
         NoNetworkTime, SntpBlocked, ServerSilent, AttachSlow]
