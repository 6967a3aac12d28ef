# The two set-up commands of the README:
#   make repro  - create .venv, install, run the whole pipeline (dvc repro) on the default profile
#   make test   - create .venv if needed, install, run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export MPLBACKEND ?= Agg
# stage commands in dvc.yaml call `python`: make it the venv's
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test lint install clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline_steps tests benchmarks

clean-venv:
	rm -rf $(VENV)
