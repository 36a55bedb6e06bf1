#!/usr/bin/env bash
# Create .venv with everything the demo, tests and benchmarks need. Idempotent: a stamp holding
# the hash of the requirement files makes a second run return at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
want=$(cat pyproject.toml requirements/*.txt | sha256sum | cut -c1-16)
stamp=.venv/.agl-installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and exactly this spec: the CPU wheel on disk; anything else pulls CUDA builds.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check \
  -c requirements/constraints.txt -c requirements/lock.txt -r requirements/dev.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
.venv/bin/pip check
echo "$want" > "$stamp"
