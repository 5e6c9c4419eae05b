# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench

# Re-install only when the package definition or the pinned versions change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/velo demo

# Two workers, one per CI core, each taking whole test files (module fixtures compile once).
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check velo tasks meta_train tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/tasks.py
	$(BIN)/python benchmarks/baselines.py
	$(BIN)/python benchmarks/lopt_overhead.py
	$(BIN)/python benchmarks/meta_train.py
