# The two commands of the README: `make demo` and `make test`.
# `make venv` only builds .venv from the pinned set; it is redone when the pins or metadata change.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

BENCH_VENV := .bench-venv

.PHONY: venv test test-slow demo bench-venv lock clean

venv: $(STAMP)

$(STAMP): constraints.txt setup.cfg pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt pip setuptools wheel
	$(BIN)/pip install --quiet -c constraints.txt --no-build-isolation -e '.[test]'
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The whole attack, offline, on the embedded default (digits + bundled photos): see README.
demo: venv
	$(BIN)/copycat-demo --output=demo_output

test-slow: venv
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# The benchmarks' environment: the project plus the baselines they compare against (large: torch).
bench-venv: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: constraints.txt benchmarks/constraints.txt setup.cfg pyproject.toml
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -c constraints.txt pip setuptools wheel
	$(BENCH_VENV)/bin/pip install --quiet -c constraints.txt --no-build-isolation -e .
	$(BENCH_VENV)/bin/pip install --quiet -c constraints.txt -c benchmarks/constraints.txt imagededup torch torchvision
	touch $@

# Re-resolve the pins from setup.cfg's ranges (needs the package registry) and rewrite constraints.txt.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip setuptools wheel
	.lock-venv/bin/pip install --quiet '.[test]'
	{ echo '# Exact versions every machine installs (make venv uses this with pip -c).'; \
	  echo '# Regenerate: make lock (a fresh venv from setup.cfg ranges, then pip freeze).'; \
	  .lock-venv/bin/pip freeze --all --exclude copycat; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info
