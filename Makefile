# Two commands on a fresh clone: `make run` and `make test`.
# Both create .venv when it is missing and install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# Both cores: each notebook stays on one worker, broker tests run one at a time
# per broker (see tests/conftest.py). `make test XDIST=` runs serially.
XDIST  ?= -n auto

.PHONY: run test lab bench notebooks golden nats lint format clean

run: $(STAMP)
	$(PY) -m simulations run

test: $(STAMP)
	$(VENV)/bin/ruff check hms_bus simulations tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST) tests $(if $(wildcard notebooks/*.ipynb),$(NBVAL) notebooks)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Re-run every notebook top to bottom and store its outputs (what nbval compares).
notebooks: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb
	$(VENV)/bin/nbstripout --keep-output --keep-count notebooks/*.ipynb

# Rewrite simulations/ida.out, the simulation's golden output; review the diff.
golden: $(STAMP)
	$(PY) -m simulations.golden

nats: $(STAMP)
	$(PY) -m hms_bus server

lint: $(STAMP)
	$(VENV)/bin/ruff check hms_bus simulations tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format hms_bus simulations tests benchmarks

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "Python >= 3.10 is needed; run e.g. 'make test PYTHON=python3.11'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) out .pytest_cache
