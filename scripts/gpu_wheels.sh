#!/usr/bin/env bash
# Download the wheels `python scripts/gpu_check.py --dry-run` lists into .gpu_wheels/ (ignored by
# git; carried to the lent GPU machine, which reaches no network).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
mkdir -p .gpu_wheels
"$py" - <<'PY' | while read -r spec; do
import sys
sys.path.insert(0, "scripts")
from gpu_check import wheels_needed
for w in wheels_needed():
    print(f"{w['name']}=={w['version']}")
PY
  "$py" -m pip download --no-deps --only-binary=:all: --platform manylinux_2_24_x86_64 \
    --python-version 3.11 --implementation cp -d .gpu_wheels "$spec"
done
"$py" scripts/gpu_check.py --dry-run >.gpu_wheels/plan.json
"$py" - <<'PY'
import json

p = json.load(open(".gpu_wheels/plan.json"))
mib = lambda b: b / 2**20
verdict = "fits" if p["fits"] else "TOO BIG"
print(f"wheels {mib(p['wheel_total_bytes']):.1f} MiB + tree {mib(p['tree_bytes']):.1f} MiB of {mib(p['limit_bytes']):.0f} MiB: {verdict}")
PY
