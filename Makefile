# The two set-up commands of the README:
#   make repro  - create .venv, install, run the whole pipeline (dvc repro, the env / seed branches side by
#                 side: pipeline_steps/repro.py) on the default profile
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

.PHONY: repro test lint install clean-venv results gc-results gc-large

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	python -m pipeline_steps.repro

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline_steps tests benchmarks experiments profiles

# docs/results: the default profile on 3 seeds for both envs (Snakemake; 1 torch thread per job, so two
# jobs at a time here) and the label ablations on seed 0 (two at a time). Writes the results profile's
# outputs into data/ (`dvc repro` afterwards brings back the default profile's).
RESULTS := docs/results
results: $(STAMP)
	snakemake --profile workflow/profiles/local --configfile profiles/results.yaml
	python experiments/label_ablations.py --params profiles/results.yaml --out $(RESULTS)/ablations.csv
	mkdir -p $(RESULTS)
	cp data/aggregate/results.csv data/aggregate/summary.csv data/aggregate/summary.md $(RESULTS)/
	cp data/aggregate/return_vs_w.png $(RESULTS)/return_vs_w.png
	mkdir -p $(RESULTS)/per_seed
	for env in walker-run cheetah-run; do \
	  for fig in return_vs_w drift_vs_w advantage_hist weight_concentration training_curves; do \
	    cp data/plots/$${env}/$${fig}.png $(RESULTS)/$${env}_$${fig}.png; done; \
	  for seed in 0 1 2; do \
	    cp data/evaluate/$${env}/seed$${seed}/summary.csv $(RESULTS)/per_seed/$${env}_seed$${seed}_summary.csv; done; done
	$(MAKE) gc-results

# the goal-conditioned half of docs/results: the results profile's gc_envs on its 3 seeds (Snakemake,
# only the gc_* jobs), copied into docs/results/gc/
GC_RESULTS := $(RESULTS)/gc
GC_ENV := pointmaze-medium-navigate
gc-results: $(STAMP)
	snakemake data/gc_plots/$(GC_ENV)/results.csv --profile workflow/profiles/local --configfile profiles/results.yaml
	mkdir -p $(GC_RESULTS)/per_seed
	cp data/gc_plots/$(GC_ENV)/results.csv data/gc_plots/$(GC_ENV)/success_vs_w.png data/gc_plots/$(GC_ENV)/trajectories.png \
	  data/gc_dataset/$(GC_ENV)/stats.json $(GC_RESULTS)/
	for seed in 0 1 2; do \
	  cp data/gc_evaluate/$(GC_ENV)/seed$${seed}/summary.csv $(GC_RESULTS)/per_seed/seed$${seed}_summary.csv; \
	  for algo in cfgrl flow_gcbc gcbc; do \
	    cp data/train_gc/$(GC_ENV)/$${algo}/seed$${seed}/metrics.json $(GC_RESULTS)/per_seed/seed$${seed}_$${algo}_metrics.json; done; done

# a larger pointmaze on OGBench's recipe data and a larger budget (profiles/gc_large.yaml, seed 0)
GC_LARGE := $(RESULTS)/gc_large
gc-large: $(STAMP)
	snakemake data/gc_plots/pointmaze-large-navigate/results.csv --profile workflow/profiles/local --configfile profiles/gc_large.yaml
	mkdir -p $(GC_LARGE)
	cp data/gc_plots/pointmaze-large-navigate/results.csv data/gc_plots/pointmaze-large-navigate/success_vs_w.png \
	  data/gc_plots/pointmaze-large-navigate/trajectories.png data/gc_dataset/pointmaze-large-navigate/stats.json \
	  data/gc_evaluate/pointmaze-large-navigate/seed0/summary.csv $(GC_LARGE)/
	for algo in cfgrl flow_gcbc gcbc; do \
	  cp data/train_gc/pointmaze-large-navigate/$${algo}/seed0/metrics.json $(GC_LARGE)/$${algo}_metrics.json; done

clean-venv:
	rm -rf $(VENV)
