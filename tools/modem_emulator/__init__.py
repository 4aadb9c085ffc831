"""Modem emulator: a SIM7020 or BC95 on a pseudo-terminal, byte for byte as docs/modems.md
§10 describes (per firmware revision, §13), forwarding its sockets' datagrams over real UDP on
127.0.0.1.

    with ModemEmulator("sim7020", registration_delay=0.1, pcap="out.pcap") as emu:
        uart = machine.UART.attach(2, emu.port) ...      # the device side opens emu.port
        emu.fail_command("+CSOSEND", code=50)           # faults: see ModemEmulator methods
        emu.commands_received, emu.bytes_from_device     # counters

Constructor keywords (all optional; times in seconds):
  imei, iccid, imsi, ip          identities and the PDP address the modem reports
  boot_time=0.05                 silence after power-on / reboot before the boot output
  registration_delay=0.2         radio on -> registered; registration_stat=1 (5 = roaming)
  network_band=None              the band the network is on: registration only where the
                                 module searches it (None: any band)
  cpin_delay=0.05                SIM7020 CFUN=1 -> URC +CPIN: READY
  cmd_delay=0.0, cmd_delays={"+CSOSEND": 0.5}   per-command response delay
  urc_inside_prob=0.0, urc_inside=None|True|False, seed=0   SIM7020 URC between info and OK
  pcap=None                      path of a pcap file of every forwarded datagram
  remote_host="127.0.0.1", remote_map={"203.0.113.10": ("127.0.0.1", 5684)}
  boot_lines=None                SIM7020: RDY, +CFUN: 1, +CPIN: READY, SMS Ready; BC95: the
                                 Neul banner ("{cause}")
  csq=(20, 99), max_datagram=512 (largest uplink), max_downlink (SIM7020 512, BC95 1472),
  unregistered_send="error"|"drop"
  dns={"host": "ip"}, dns_fail_delay=70.0
  busy_prob=0.0                  seeded chance that a send gets the busy error (159 / 516)
  powered=True, pwrkey_off_time=0.8   start on; a PWRKEY pulse this long powers it down
                                 (SIM7020 Hardware Design V1.02 table 9)
  rrc_inactivity=20.0            uplink -> +CSCON:0 without release assistance
  release_delay=0.1              release assistance (NSOSTF flags, CNBIOTRAI) -> +CSCON:0
  tz=32, clock_offset=0.0, nitz=True   the network's zone (quarter hours), its clock against
                                 the host's, and whether it sends NITZ on registration
  psm_grant="request"            what the network grants for AT+CPSMS: "request" (as asked),
                                 "refuse" (timers "deactivated"), or its own (T3412, T3324)
                                 bit strings, shown by AT+CEREG=4
  edrx=None                      eDRX cycle bits in force from the module's own settings
  sleep_idle=5.0                 SIM7020 CSCLK=2: idle time before the UART sleeps
  faults=[(t, "method", {kwargs}), ...]   scripted faults (see script())
  nat=45.0                       carrier NAT binding lifetime (nat.py); None or "none": no
                                 NAT (private APN with public addresses); .nat.advance(s)
  start=True
  SIM7020 only: revision, ccid_prefixed=False, csosend_length="hex"|"bytes"|"any",
                sim_present=True, bands, curtc=0 (factory AT+CURTC: 0 UTC, 1 local time),
                cgsn_set=False (accept AT+CGSN=1), ipr=0 (saved baud rate, 0 = autobaud)
  BC95 only:    early_error=2.0, autoconnect=True, bands=(8,),
                revision="new"|"old"|"bc95g"|<string> (B657SP3, B650, BC95-G; what the
                firmware has follows manual V1.8 §2), nsorf_remaining="message"|"buffer",
                nsonmi=1 (saved NSONMI mode, BC95-G), cclk="utc"|"local"
"""
from .core import ModemEmulator
from .sim7020 import Sim7020Emulator
from .bc95 import Bc95Emulator

DIALECTS = {"sim7020": Sim7020Emulator, "bc95": Bc95Emulator}

__all__ = ["ModemEmulator", "Sim7020Emulator", "Bc95Emulator", "DIALECTS"]
