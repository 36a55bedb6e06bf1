# The two commands of the README: `make demo` (install + the main job) and `make test`.
.PHONY: setup demo lint test

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/python -m examples.demo

lint: setup
	@bash scripts/lint.sh

test: lint
	@bash scripts/ensure_chromium.sh || echo "chromium unavailable: browser tests will be skipped"
	.venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)
