# Two commands on a fresh clone: `make run` and `make test`.
# Both create .venv when it is missing and install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=300
# One pytest-xdist worker per core plus one: each notebook stays on one worker,
# broker tests run one at a time per broker (see tests/conftest.py), and many
# tests spend seconds waiting (on brokers, subprocesses, the chapter's 5 s sleep),
# which the extra worker fills. On 2 cores: 2 workers 122 s, 3 workers 100 s.
# `make test XDIST=` runs serially.
XDIST  ?= -n $(shell echo $$(( $$(nproc 2>/dev/null || echo 2) + 1 )))

.PHONY: run test test-browser lab dashboard bench notebooks golden nats lint format clean

run: $(STAMP)
	$(PY) -m simulations run

test: $(STAMP)
	$(VENV)/bin/ruff check hms_bus simulations tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST) tests $(if $(wildcard notebooks/*.ipynb),$(NBVAL) notebooks)

# Jupyter refuses to run as root unless told; only then is --allow-root added.
AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

# Trusting the kit's own notebooks lets JupyterLab draw their saved widgets
# before anything runs (it records their signatures in your Jupyter data dir).
lab: $(STAMP)
	$(VENV)/bin/jupyter trust notebooks/*.ipynb
	$(VENV)/bin/jupyter lab $(AS_ROOT) notebooks

# Notebook 09 as a page (Voila, code hidden) on http://127.0.0.1:8866: the governor's
# board plays the day live. PORT=... to change the port.
PORT ?= 8866
dashboard: $(STAMP)
	$(VENV)/bin/voila --no-browser --Voila.ip=127.0.0.1 --port=$(PORT) \
		--VoilaConfiguration.progressive_rendering=True notebooks/09-governors-dashboard.ipynb

# JupyterLab and Voila in headless Chromium (Debian's; apt-get install -y chromium).
CHROMIUM ?= /usr/bin/chromium
test-browser: $(STAMP)
	@test -x $(CHROMIUM) || { echo "no Chromium at $(CHROMIUM): apt-get install -y chromium, or make test-browser CHROMIUM=/path/to/chromium"; exit 1; }
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -p no:cacheprovider --browser tests/browser

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Re-run every notebook top to bottom and store its outputs (what nbval compares)
# and its widget state (so sliders and boards render when a notebook is opened).
# A cell that runs longer than NB_TIMEOUT seconds fails the run instead of hanging.
NB_TIMEOUT ?= 300
notebooks: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=$(NB_TIMEOUT) notebooks/*.ipynb
	$(VENV)/bin/nbstripout --keep-output --keep-count --keep-metadata-keys metadata.widgets \
		notebooks/*.ipynb

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
