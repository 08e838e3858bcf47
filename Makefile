# Shardline's two commands: `make test` and `make bench`.  Both create .venv on first use
# (and refresh it whenever pyproject.toml changes), so a fresh clone needs only python3.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Every dependency of the dev extra (which includes the bench, kafka, local, kcl and otel roles), pinned
# with its sha256 hashes for Python 3.11; `make lock` regenerates it after a dependency change.
LOCK ?= requirements/dev.txt
PACKAGES := shardline producers consumers benchmarks
PYTEST_ARGS ?=
BENCH_ARGS ?=
# The stamp's name carries a hash of pyproject.toml: a changed dependency list reinstalls.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: all test bench lint unit integration venv lock wheel-check

all: test

venv: $(STAMP)

# Dependencies install in hash-checking mode from the lock; the project itself then installs
# editable without fetching anything (no build isolation: it builds with the locked setuptools).
$(STAMP): pyproject.toml Makefile $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	$(BIN)/shardline-install-kclpy --if-missing
	@rm -f $(VENV)/.installed-*
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check $(PACKAGES) tests
	$(BIN)/ruff format --check $(PACKAGES) tests
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

# Regenerate the hashed locks from pyproject.toml (pip-tools in a throwaway virtualenv): the dev
# lock for .venv, and one per role (requirements/<role>.txt, used by .ci/wheel-check and by anyone
# who installs a role with --require-hashes).  Each role starts from the dev lock's pins.
ROLES := base kafka otel bench bench-peers local kcl
# Extras are kept on the pins (moto[server]==...): pip's --require-hashes refuses a wheel's
# `moto[server]>=5.0` whose pin lacks the extra as soon as the index has a newer moto.
PIP_COMPILE = $(VENV)-lock/bin/pip-compile --quiet --generate-hashes --unsafe-package shardline \
	--no-strip-extras --no-emit-index-url --no-emit-find-links
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet --disable-pip-version-check pip-tools
	$(PIP_COMPILE) --extra dev --output-file $(LOCK) pyproject.toml
	for role in $(ROLES); do \
		cp $(LOCK) requirements/$$role.txt; \
		extra=$$([ $$role = base ] || echo "--extra $$role"); \
		$(PIP_COMPILE) $$extra --output-file requirements/$$role.txt pyproject.toml || exit 1; \
	done
	rm -rf $(VENV)-lock

# Build the wheel and sdist and run each role's commands from its own fresh virtualenv.
wheel-check:
	bash .ci/wheel-check
