# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make run    set up .venv, run scenarios/default.toml, write results/default.nc and a plot
#   make test   set up .venv if needed, then run the whole test suite (on every core:
#               pytest-xdist; the docking runs are plain Python, one core each)
#   make test-fast  the suite without the tests marked slow (under a minute)
#   make docs   regenerate the README's reference tables from the code
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast docs lint bench clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/distsim run scenarios/default.toml --out results/default.nc --plot results/default_funnel.png

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

docs: $(STAMP)
	$(BIN)/python -m simulation.docs --write

lint: $(STAMP)
	$(BIN)/ruff check simulation tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
