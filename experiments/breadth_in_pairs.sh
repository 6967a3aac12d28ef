#!/bin/bash
# `make breadth` two tasks at a time, each pair run to its plots before the next starts (Snakemake's own
# order is breadth-first: every dataset, then every critic, ...), so a run cut short (a 180-minute CPU
# session) still leaves whole tasks; the table (docs/results/breadth) is rewritten after each pair and
# lists the tasks not reached as missing. Finished jobs are not rerun. Usage: experiments/breadth_in_pairs.sh
set -u
cd "$(dirname "$0")/.."
pairs=(
  "walker-run pointmaze-large-navigate-singletask"
  "cheetah-run cube-single-play-singletask"
  "cheetah-run-backward pointmaze-teleport-navigate-singletask"
  "jaco-reach-top-left scene-play-singletask"
  "quadruped-run puzzle-3x3-play-singletask"
  "walker-walk jaco-reach-top-right"
  "walker-stand quadruped-walk"
)
# the pairs must be exactly the profile's tasks: a task added to the profile is not silently left out
make install
listed=$(printf '%s\n' ${pairs[@]} | LC_ALL=C sort)
profile=$(.venv/bin/python -c "from pipeline_steps.core.params import load_params
print('\n'.join(sorted(load_params('profiles/breadth.yaml').envs)))")
if [ "$listed" != "$profile" ]; then
  echo "breadth_in_pairs.sh: its pairs differ from profiles/breadth.yaml's envs:" >&2
  diff <(echo "$listed") <(echo "$profile") >&2
  exit 2
fi
for pair in "${pairs[@]}"; do
  targets=""
  for env in $pair; do targets="$targets data/plots/$env/results.csv"; done
  echo "=== $(date -u +%T) pair: $pair"
  make breadth BREADTH_SNAKE_ARGS="$targets"
  echo "=== $(date -u +%T) done: $pair (rc $?)"
done
