"""Fault soak: the host twin (firmware/main.py unchanged, modem emulator, strict local EnOS
server) for hundreds of report cycles with faults drawn per cycle, then a check of what the
server holds against the sensor's own log.

    python -m tools.soak [--cycles 500] [--seed 1] [--board esp32-sim7020]
                         [--rtt 2000-10000] [--out out/soak] [--force KIND@CYCLE,...]

`make soak` runs 500 cycles (scaled time) and one short run with unscaled NB-IoT round trips
of 2 to 10 s; `make test` runs a shorter seeded soak (host_tests/test_soak.py). The fault
kinds are in faults.py; the figures (one `soak.<name>: value` line each, energy in the
device's simulated time) and what each means are in docs/queue-and-time.md.
"""
