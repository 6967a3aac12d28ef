#!/usr/bin/env bash
# The prepared device check (issue 15): benchmarks/gpu_check.py on a machine with a GPU, under 8 minutes.
#
# The device machine's python3 holds torch with CUDA, numpy, pandas, tqdm and pyyaml, but not pydantic
# (our params validation), and it cannot download: fetch pydantic's wheels here first, into .whl/
# (git-ignored through .git/info/exclude), then run this script there with `.whl` carried:
#   benchmarks/gpu_check.sh --fetch-wheels          # here, once (needs the package registry)
#   benchmarks/gpu_check.sh [gpu_check.py options]  # there; also runs on a CPU-only machine
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0)
if [[ "${1:-}" == "--fetch-wheels" ]]; then
  grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
  ls .whl
  exit 0
fi
PY=python3
if ! "$PY" -c "import pydantic" 2>/dev/null; then
  ls .whl/*.whl >/dev/null 2>&1 || { echo "pydantic missing and no .whl/: run '$0 --fetch-wheels' where pip works" >&2; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec "$PY" benchmarks/gpu_check.py "$@"
