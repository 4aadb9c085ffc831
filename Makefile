# One entry point for everything a device maker or CI runs. Every target installs what it needs,
# idempotently: a virtual environment under .venv from requirements.txt, node_modules from the
# committed lock file, and Debian tools through apt-get only when one is missing.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
MPYCROSS := $(VENV)/bin/mpy-cross
BUILD := build
PORT ?= /dev/ttyUSB0
BOARD ?= esp32-sim7020
# Runtime of the host twin: auto (the MicroPython unix port where installed), micropython, cpython.
RUNTIME ?= auto
MODE ?= mpy
MICROPYTHON := $(VENV)/bin/micropython

# Debian packages the tests use as real peers (and the browser the web page's tests drive);
# installed only when a command is missing.
DEBIAN_TOOLS := coap-server-notls:libcoap3-bin tshark:tshark mosquitto:mosquitto \
	mosquitto_pub:mosquitto-clients autoreconf:autoconf automake:automake libtoolize:libtool \
	openssl:openssl chromium:chromium

FIRMWARE_PY := $(shell find firmware -name '*.py' 2>/dev/null | sort)

.PHONY: all deps test test-host test-vm mpy bench budget demo soak server clean \
	image romfs powercut board \
	device-deps deploy flash secrets monitor repl ports preflight package-json mip-package mip \
	mutation fuzz

all: test

$(VENV)/.stamp: requirements.txt | $(BUILD)/.debian
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel cython
	$(PY) -m pip install -q -r requirements.txt
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# Checked again when the Makefile changes, so that a tool added to DEBIAN_TOOLS gets installed.
$(BUILD)/.debian: Makefile
	@mkdir -p $(BUILD)
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

deps: $(VENV)/.stamp node_modules/.stamp

# mpy-cross compiles every device file: a syntax MicroPython rejects fails the build.
$(BUILD)/mpy/.stamp: $(FIRMWARE_PY) $(VENV)/.stamp
	@rm -rf $(BUILD)/mpy && mkdir -p $(BUILD)/mpy
	@set -e; for f in $(FIRMWARE_PY); do \
		out=$(BUILD)/mpy/$${f#firmware/}; out=$${out%.py}.mpy; mkdir -p $$(dirname $$out); \
		$(MPYCROSS) -march=xtensawin -o $$out $$f; \
	done
	@echo "mpy-cross: $(words $(FIRMWARE_PY)) files compiled"
	@touch $@

mpy: $(BUILD)/mpy/.stamp

test: deps mpy test-host test-vm

test-host: deps
	$(PYTEST) -q host_tests

# The VM suite twice: in the 32-bit WebAssembly port, and on the MicroPython unix port.
test-vm: deps
	@echo "MicroPython WebAssembly port:"
	@set -o pipefail; node tools/mpvm/run.mjs --suite host_tests/vm | grep -v '^PASS ' | grep -v '^\[enosnb\]'
	@echo "MicroPython unix port:"
	@set -o pipefail; if [ -x $(MICROPYTHON) ]; then $(MICROPYTHON) tools/host/vmsuite.py host_tests/vm | grep -v '^\[enosnb\]'; \
	else echo "vm-unix: not run: the MicroPython unix port has no wheel for this platform"; fi

# Mutation testing of coap, dtls, enos, store.py and state.py against the fast suite (mutmut):
# prints mutation.<package>.score_pct and every surviving mutant. MUTATION_ARGS=--keep reuses the
# results of functions that did not change.
mutation: deps
	$(PY) tools/mutation.py $(MUTATION_ARGS)

# Every parser on the MicroPython unix port and on CPython, 100,000 inputs each per runtime:
# prints fuzz.<parser>.inputs and branch_pct, fuzz.escapes and fuzz.hangs. FUZZ_ARGS="--inputs N".
fuzz: deps
	$(PY) -m tools.fuzz $(FUZZ_ARGS)

bench: deps mpy
	$(PY) tools/bench.py

# The host twin: firmware/main.py unchanged, through the modem emulator, to the local EnOS server,
# on the MicroPython unix port (RUNTIME=cpython: on CPython; MODE=py|mpy|romfs: deployment mode).
# KEEP=1: afterwards the device keeps reporting and the web page stays up until Ctrl-C.
# V=1: the AT dialogue and both sides' logs (docs/demo.md).
demo: deps mpy
	@mkdir -p out
	$(PY) tools/twin.py --board $(BOARD) --cycles 4 --command --pcap out/demo.pcap --runtime $(RUNTIME) --mode $(MODE) $(if $(filter 1 yes true,$(KEEP)),--keep) $(if $(filter 1 yes true,$(V)),-v) $(DEMO_ARGS)

# A virtual ESP32 on the MicroPython unix port: prints its port for `make deploy PORT=...`,
# mpremote or a terminal; UART wired to the modem emulator, local EnOS server, flash in out/board.
# FRESH=1 erases its flash; MODE=mpy|py picks the deployment mode (heap cap); HEAP=bytes overrides.
board: deps
	$(PY) -m tools.host.board --board $(BOARD) --mode $(MODE) $(if $(HEAP),--heap $(HEAP)) $(if $(filter 1 yes true,$(FRESH)),--fresh)

# The long power-cut and outage runs on MicroPython (make test runs a short seeded version):
# KILLS cuts per board, half inside the flash's erases and programs (torn pages), half at AT lines.
KILLS ?= 200
powercut: deps
	$(PY) -m tools.host.powercut --kills $(KILLS) --runtime $(if $(filter auto,$(RUNTIME)),micropython,$(RUNTIME))

# The fault soak: 500 report cycles of the twin with faults drawn per cycle (scaled time), then
# a short run with unscaled NB-IoT round trips of 2-10 s and the device's timers (the server
# silent for an hour and a 5-minute attach scripted into it); prints soak.* figures, fails on a
# lost, wrongly dated, unexplained resent or stuck reading, or a boot of an energy fault that
# did not back off into deep sleep within its budget (docs/queue-and-time.md).
soak: deps mpy
	$(PY) -m tools.soak --cycles 500 --seed 1 --out out/soak
	$(PY) -m tools.soak --cycles 10 --seed 2 --rtt 2000-10000 --fault-rate 0.3 --prefix soak_rtt --out out/soak_rtt --force server_silent_1h@1,attach_5min@2

server: deps
	$(PY) -m tools.enos_server serve

budget: deps mpy
	$(PY) -m tools.budget --table docs/budget.md --readme README.md

# --- The device path: flash, deploy, secrets, monitor, repl, preflight ----------------------------
# Only Python and pip: its own environment from requirements-device.txt (mpremote, esptool,
# mpy-cross), no root, apt, npm or compiler; docs/device-tools.md gives the same commands
# without make (macOS, Windows). PORT=/dev/ttyUSB0, BOARD=esp32-sim7020.
DEVICE_VENV := .venv-device
DEVICE_PY := $(DEVICE_VENV)/bin/python
# SECRETS=1 copies firmware/secrets.json, SECRETS=<file> that file.
SECRETS_ARGS = $(if $(filter 1 yes true,$(SECRETS)),--secrets,$(if $(SECRETS),--secrets --secrets-file $(SECRETS)))
DRY_ARG = $(if $(filter 1 yes true,$(DRY)),--dry-run)
BOARD_GIVEN = $(filter command line environment,$(origin BOARD))
# make demo SENSORS=firmware/sensors.py SECRETS=firmware/secrets.json: the maker's own sensor
# and keys in the twin (the local server's registry gets the device).
DEMO_ARGS = $(if $(SENSORS),--sensors $(SENSORS)) $(if $(SECRETS),--secrets $(if $(filter 1 yes true,$(SECRETS)),firmware/secrets.json,$(SECRETS)))

$(DEVICE_VENV)/.stamp: requirements-device.txt
	test -x $(DEVICE_PY) || $(PYTHON) -m venv $(DEVICE_VENV) || python3 -m venv $(DEVICE_VENV)
	$(DEVICE_PY) -m pip install -q -r requirements-device.txt
	touch $@

device-deps: $(DEVICE_VENV)/.stamp

# make flash PORT=/dev/ttyUSB0 IMAGE=ESP32_GENERIC-<version>.bin [CHIP=esp32] (erases the board)
flash: device-deps
	@test -n "$(IMAGE)" || { echo "usage: make flash PORT=/dev/ttyUSB0 IMAGE=ESP32_GENERIC-<version>.bin [CHIP=esp32]"; exit 2; }
	$(DEVICE_PY) tools/deploy.py flash --port $(PORT) --image $(IMAGE) $(if $(CHIP),--chip $(CHIP)) $(DRY_ARG)

# make deploy PORT=... BOARD=... [SECRETS=1|file] [SENSORS=my_sensors.py] [DRY=1: only print]
# ROMFS=1: the package as a ROMFS image (custom image with a ROMFS partition); FROZEN=1: the
# image has enosnb frozen in (make image), only main.py, sensors.py and the JSON (docs/ram.md).
deploy: device-deps
	$(DEVICE_PY) tools/deploy.py deploy --port $(PORT) --board $(BOARD) $(SECRETS_ARGS) $(if $(SENSORS),--sensors $(SENSORS)) $(if $(filter 1 yes true,$(ROMFS)),--romfs) $(if $(filter 1 yes true,$(FROZEN)),--no-lib) $(DRY_ARG)

# The custom image for boards without PSRAM (enosnb frozen, Bluetooth off; docs/ram.md): needs
# Docker and the network, and says so (exit 2) where they are missing.
image: deps
	$(PY) tools/image.py

# ROMFS image of the package for custom images with a ROMFS partition (docs/ram.md).
romfs: deps
	$(PY) tools/romfs.py build

# make secrets [FORCE=1] [OUT=file] [BOARD=...]; make secrets CHECK=secrets.json|board.json
secrets: device-deps
	$(DEVICE_PY) tools/secrets_tool.py $(if $(CHECK),check $(CHECK),create $(if $(filter 1 yes true,$(FORCE)),--force) $(if $(OUT),--out $(OUT)) $(if $(BOARD_GIVEN),--board $(BOARD)))

# What the board prints, with host times, without stopping it (RESET=1: reset it first).
monitor: device-deps
	$(DEVICE_PY) tools/board_console.py monitor --port $(PORT) $(if $(filter 1 yes true,$(RESET)),--reset) $(if $(LOG),--log $(LOG))

# Onto the REPL of a running or sleeping board: Ctrl-C until the prompt, then mpremote's REPL.
repl: device-deps
	$(DEVICE_PY) tools/board_console.py repl --port $(PORT) $(if $(filter 1 yes true,$(RESET)),--reset)

ports: device-deps
	$(DEVICE_PY) -m mpremote connect list

# From this computer to the tenant's CoAP host with the device's keys: one reading, and why not.
preflight: device-deps
	$(DEVICE_PY) tools/preflight.py --secrets $(or $(SECRETS_FILE),firmware/secrets.json) $(if $(IMEI),--imei $(IMEI)) $(if $(POINT),--point $(POINT))

# firmware/package.json for `mpremote mip install`; build/mip/ holds the .mpy variant.
package-json: device-deps
	$(DEVICE_PY) tools/deploy.py package-json

mip-package: device-deps
	$(DEVICE_PY) tools/deploy.py mip-package

# make mip PORT=...: the .mpy package through mip (the board's old lib/enosnb goes first).
mip: device-deps
	$(DEVICE_PY) tools/deploy.py mip --port $(PORT) $(DRY_ARG)

clean:
	rm -rf $(BUILD) .pytest_cache
