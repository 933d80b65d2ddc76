# One entry point for everything; each target sets the machine up first if needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

PYSTAMP := $(VENV)/.setup-done
NODESTAMP := node_modules/.setup-done

.PHONY: setup test bench mpy demo faults lint flash deploy clean

setup: $(PYSTAMP) $(NODESTAMP)
	@missing=""; for c in openssl:openssl mosquitto:mosquitto chromium:chromium promtool:prometheus; do \
	  command -v $${c%%:*} >/dev/null || PATH=$$PATH:/usr/sbin command -v $${c%%:*} >/dev/null || missing="$$missing $${c#*:}"; done; \
	  [ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; }

$(PYSTAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(NODESTAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

test: setup mpy
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: setup mpy
	$(PY) -m tools.bench

mpy: setup
	$(PY) -m tools.build_mpy

demo: setup mpy
	$(PY) -m tools.demo

faults: setup mpy
	$(PY) -m tools.faults

lint: setup
	$(PY) -m ruff check lib firmware boards tools tests

# Real hardware: make flash PORT=/dev/ttyUSB0 FIRMWARE=ESP32_GENERIC-v1.24.bin
flash: setup
	$(PY) -m pip install -q -e '.[flash]'
	$(PY) -m esptool --chip esp32 --port $(PORT) erase_flash
	$(PY) -m esptool --chip esp32 --port $(PORT) --baud 460800 write_flash -z 0x1000 $(FIRMWARE)

# make deploy PORT=/dev/ttyUSB0 BOARD=shelly_ade7953 [CA=roots.pem]
deploy: setup mpy
	$(VENV)/bin/plugctl deploy --port $(PORT) --board $(BOARD) $(if $(CA),--ca $(CA))

clean:
	rm -rf build .pytest_cache .hypothesis
