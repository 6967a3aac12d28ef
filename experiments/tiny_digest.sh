#!/usr/bin/env bash
# The tiny profile's outputs, byte by byte: `dvc repro` of profiles/tiny.yaml in a temporary copy of a git
# revision (or of the work tree: tracked and untracked, not ignored files), then the sha256 of every file
# it wrote under data/ (JSON files: of their content less the wall-clock keys, whose names say so: seconds, *_cost,
# ms_per_*, *_per_second; the list names the keys left out). A change that must not change any output (a
# layout move, a refactor) leaves the list unchanged:
#   experiments/tiny_digest.sh HEAD~3 before.txt; experiments/tiny_digest.sh WORKTREE after.txt
#   diff before.txt after.txt && echo identical
# Needs the project's environment on PATH (make install; . .venv/bin/activate).
set -euo pipefail
rev=${1:-WORKTREE}
out=$(realpath -m "${2:-tiny_digest.txt}")
repo=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$repo"
if [ "$rev" = WORKTREE ]; then
  git ls-files -co --exclude-standard | grep -v '^data/' | while read -r f; do [ -f "$f" ] && echo "$f"; done \
    | tar -cf - -T - | tar -xf - -C "$tmp"
else
  git archive "$rev" | tar -xf - -C "$tmp"
fi
cp profiles/tiny.yaml "$tmp/params.yaml"
cd "$tmp"
git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm "$rev"
if ! dvc repro >repro.log 2>&1; then tail -30 repro.log >&2; exit 1; fi
python - "$out" <<'PY'
import hashlib, json, re, sys
from pathlib import Path

CLOCK = re.compile(r"seconds|ms_per_|_per_second|_cost$")  # wall-clock figures: differ between any two runs


def strip(obj, dropped, prefix=""):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if CLOCK.search(k):
                dropped.append(prefix + k)
            else:
                out[k] = strip(v, dropped, f"{prefix}{k}.")
        return out
    return obj


lines = []
for f in sorted(p for p in Path("data").rglob("*") if p.is_file() and p.name != "README.md"):
    data, note = f.read_bytes(), ""
    if f.suffix == ".json":
        dropped = []
        data = json.dumps(strip(json.loads(data), dropped), sort_keys=True).encode()
        note = f"  (without {', '.join(dropped)})" if dropped else ""
    lines.append(f"{hashlib.sha256(data).hexdigest()}  {f}{note}\n")
Path(sys.argv[1]).write_text("".join(lines))
PY
echo "$(wc -l <"$out") files -> $out"
