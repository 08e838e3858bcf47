# Shardline's two commands: `make test` and `make bench`.  Both create .venv on first use
# (and refresh it whenever pyproject.toml changes), so a fresh clone needs only python3.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,kafka,bench
PACKAGES := shardline producers consumers benchmarks
PYTEST_ARGS ?=
BENCH_ARGS ?=
# The stamp's name carries a hash of pyproject.toml: a changed dependency list reinstalls.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: all test bench lint unit integration venv

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	$(BIN)/python deploy/scripts/install_kclpy.py --if-missing
	@rm -f $(VENV)/.installed-*
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check $(PACKAGES) tests
	$(BIN)/mypy --strict $(PACKAGES)
	$(BIN)/lint-imports
	$(BIN)/bandit -q -c pyproject.toml -r $(PACKAGES)

# pytest exits 5 when it collected no tests; make treats every non-zero exit as failure,
# so an empty or mis-configured test run never passes.
test: lint
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/stream-bench run $(BENCH_ARGS)
