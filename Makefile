# The two set-up commands of the README:
#   make repro  - create .venv, install, run the whole pipeline (dvc repro, the env / seed branches side by
#                 side: pipeline_steps/both/repro.py) on the default profile
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

.PHONY: repro test lint deps install clean-venv results results-rl gc-results gc-large gc-giant breadth compare exps data-pilot

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	python -m pipeline_steps.both.repro

test: $(STAMP)
	$(BIN)/python -m pytest -q

# a finished run (data/aggregate, or RUN=dir) beside a reference (docs/results/make_repro, or REF=dir):
# identical / agree within 95% intervals / DIFFERS, setting by setting
compare: $(STAMP)
	python -m pipeline_steps.both.compare $(if $(RUN),--run $(RUN)) $(if $(REF),--reference $(REF))

# `dvc exp run -S key=value` experiments side by side in 100 columns: the params that differ and the
# headline numbers (data/aggregate/metrics.json) per env; EXPS_ARGS go to `dvc exp show` (e.g. -A)
exps: $(STAMP)
	python -m pipeline_steps.both.exps $(EXPS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check pipeline_steps tests benchmarks experiments profiles
	$(BIN)/lint-imports
	$(BIN)/python -m pipeline_steps.both.code_deps

# rewrite dvc.yaml's code deps from the stages' imports (after adding or moving an import)
deps: $(STAMP)
	$(BIN)/python -m pipeline_steps.both.code_deps --write

# docs/results: the default profile on 3 seeds for both envs (Snakemake; 1 torch thread per job, so two
# jobs at a time here) and the label ablations on seed 0 (two at a time). Writes the results profile's
# outputs into data/ (`dvc repro` afterwards brings back the default profile's).
RESULTS := docs/results
results: results-rl
	python experiments/label_ablations.py --params profiles/results.yaml --out $(RESULTS)/ablations.csv
	$(MAKE) gc-results

# the offline-RL half of `make results`: the 3-seed Snakemake run and its copies into docs/results/
results-rl: $(STAMP)
	snakemake --profile workflow/profiles/local --configfile profiles/results.yaml
	mkdir -p $(RESULTS)
	cp data/aggregate/results.csv data/aggregate/summary.csv data/aggregate/summary.md $(RESULTS)/
	cp data/aggregate/return_vs_w.png $(RESULTS)/return_vs_w.png
	mkdir -p $(RESULTS)/per_seed
	for env in walker-run cheetah-run; do \
	  for fig in return_vs_w drift_vs_w return_vs_drift advantage_hist weight_concentration training_curves return_over_training; do \
	    cp data/plots/$${env}/$${fig}.png $(RESULTS)/$${env}_$${fig}.png; done; \
	  cp data/plots/$${env}/extraction.png $(RESULTS)/$${env}_extraction.png; \
	  if [ -f data/render/$${env}/frames.png ]; then cp data/render/$${env}/frames.png $(RESULTS)/$${env}_frames.png; fi; \
	  for seed in 0 1 2; do \
	    cp data/evaluate/$${env}/seed$${seed}/summary.csv $(RESULTS)/per_seed/$${env}_seed$${seed}_summary.csv; \
	    cp data/evaluate_extraction/$${env}/seed$${seed}/summary.csv $(RESULTS)/per_seed/$${env}_seed$${seed}_extraction_summary.csv; \
	    cp data/evaluate_extraction/$${env}/seed$${seed}/metrics.json $(RESULTS)/per_seed/$${env}_seed$${seed}_extraction_metrics.json; \
	    cp data/train_fql/$${env}/seed$${seed}/metrics.json $(RESULTS)/per_seed/$${env}_seed$${seed}_train_fql_metrics.json; done; done

# the goal-conditioned half of docs/results: a profile's gc_env on its 3 seeds (Snakemake, only the gc_*
# jobs), copied into docs/results/<dir>/. gc-results: the results profile's pointmaze-medium (default
# budget); gc-large: pointmaze-large on OGBench's recipe data and a larger budget (profiles/gc_large.yaml);
# gc-giant: the one-seed pilot on pointmaze-giant, OGBench's recipe (500 x 2001) at gc-large's budget.
# GC_SNAKE_ARGS passes extra Snakemake options (e.g. --rerun-triggers mtime input to keep finished seeds
# after an edit that changes no number).
define gc_results
	snakemake data/gc_plots/$(1)/results.csv --profile workflow/profiles/local --configfile $(2) $(GC_SNAKE_ARGS)
	mkdir -p $(3)/per_seed
	cp data/gc_plots/$(1)/results.csv data/gc_plots/$(1)/success_vs_w.png data/gc_plots/$(1)/trajectories.png \
	  data/gc_plots/$(1)/hier_trajectories.png data/gc_dataset/$(1)/stats.json $(3)/
	for seed in $$(python -c "from pipeline_steps.core.params import load_params as p; print(*p('$(2)').gc_seeds)"); do \
	  cp data/gc_evaluate/$(1)/seed$${seed}/summary.csv $(3)/per_seed/seed$${seed}_summary.csv; \
	  for algo in cfgrl flow_gcbc gcbc hcfgrl flow_hgcbc hgcbc; do \
	    cp data/train_gc/$(1)/$${algo}/seed$${seed}/metrics.json $(3)/per_seed/seed$${seed}_$${algo}_metrics.json; done; done
endef
gc-results: $(STAMP)
	$(call gc_results,pointmaze-medium-navigate,profiles/results.yaml,$(RESULTS)/gc)
gc-large: $(STAMP)
	$(call gc_results,pointmaze-large-navigate,profiles/gc_large.yaml,$(RESULTS)/gc_large)
gc-giant: $(STAMP)
	$(call gc_results,pointmaze-giant-navigate,profiles/gc_giant.yaml,$(RESULTS)/gc_giant)

# docs/results/breadth: every task of the paper's Tables 1 and 2 whose data can be made here (profiles/breadth.yaml,
# one seed, Snakemake; a task that fails does not stop the others), then one row per task beside the paper's
# numbers (experiments/breadth_table.py; a missing task is listed with the reason). BREADTH_SNAKE_ARGS passes
# extra Snakemake options.
breadth: $(STAMP)
	snakemake --profile workflow/profiles/local --configfile profiles/breadth.yaml --keep-going $(BREADTH_SNAKE_ARGS); \
	  status=$$?; python experiments/breadth_table.py --params profiles/breadth.yaml --out docs/results/breadth; \
	  exit $$status

# docs/results/data_pilot: the offline-RL data options on tuning seed 100 (experiments/data_pilot.py): one SAC
# run of 200k steps (update every 2 steps, batch 256) gives the 100k and 200k replay buffers and the 200k mix,
# one of 100k steps (every step, batch 128) the 100k mix; correlated data beside them
data-pilot: $(STAMP)
	python experiments/data_pilot.py --options none
	python experiments/data_pilot.py --transitions 100000 --update-every 1 --batch-size 128 --tag _b128 \
	  --no-correlated --options none
	python experiments/data_pilot.py --skip-data --options sac_replay_200k,sac_mix_200k,sac_mix_100k_b128

clean-venv:
	rm -rf $(VENV)
