# Set-up and everyday commands. Every target installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: install test test-fast run run-small dev bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $@

test: install
	$(BIN)/python -m pytest -q

# The edit loop: everything but the tests marked slow (other processes, Dask, kill -9).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m graphrec_pipeline.definitions --select '*'

run-small: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m graphrec_pipeline.definitions --select '*' -c configs/small.yaml

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1

bench: install
	$(BIN)/python benchmarks/world_benchmark.py

clean:
	rm -rf $(VENV) .dagster
