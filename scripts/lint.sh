#!/usr/bin/env bash
# The static checks of `make test`: ruff, the layer contract (import-linter), mypy (basic mode).
# Configuration lives in pyproject.toml; docs/ARCHITECTURE.md explains the layers.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check --quiet .
out=$(.venv/bin/lint-imports --no-cache 2>&1) || { echo "$out"; exit 1; }
.venv/bin/mypy --no-error-summary
