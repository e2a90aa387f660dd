# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make run    set up .venv, run scenarios/default.toml, write results/default.nc and a plot
#   make test   set up .venv if needed, then run the whole test suite (on every core:
#               pytest-xdist; the docking runs are plain Python, one core each)
#   make test-fast  the suite without the tests marked slow (under a minute)
#   make docs   regenerate the README's reference tables from the code
#   make browser  install the system's Chromium (Debian package) for the app's browser test,
#               where it is missing and this user may install packages; make test asks for it
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast docs lint bench clean install browser app

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/distsim run scenarios/default.toml --out results/default.nc --plot results/default_funnel.png

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n auto --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

browser:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq chromium' >/dev/null 2>&1 || true; \
	fi; \
	command -v chromium >/dev/null 2>&1 || \
	  echo "make browser: no Chromium here (Debian package chromium); the app's browser test will skip"

app: $(STAMP)
	$(BIN)/distsim app scenarios/default.toml --agents 20000

docs: $(STAMP)
	$(BIN)/python -m simulation.docs --write

lint: $(STAMP)
	$(BIN)/ruff check simulation tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
