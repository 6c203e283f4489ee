# pgfraud — `make help` lists the targets.
#
# Everything runs from the project's own virtual environment (.venv), made on
# first use. PostgreSQL: DATABASE_URL when set; otherwise a local server the
# project owns in ./.pgfraud, from the machine's binaries (initdb, pg_ctl) or,
# when it has none, from Debian's postgresql package (as root) or the
# pip-installable `pgserver` wheel.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
N ?= 10000
SEED ?= $(shell date +%s)

.DEFAULT_GOAL := help
.PHONY: help install postgres browser run seed test test-citus test-pg16 test-floors bench lint format clean distclean db-url

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: N=$(N) (make seed), PORT=5000 (make run), DATABASE_URL (use that server)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools warns in a box that a folder named like the package (./pgfraud)
	@# could shadow the editable install; the package is mapped from several
	@# folders on purpose (pyproject.toml), so the warning is noise here.
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) postgres ## Make .venv and install pgfraud with its test tools

# Server binaries are needed for the local server and for the tests' throwaway
# server; not when both DATABASE_URL and PGFRAUD_TEST_DATABASE_URL are given.
postgres: $(STAMP) ## Make sure PostgreSQL server binaries exist
	@if $(BIN)/python -c 'from pgfraud.db.server import find_bindir; find_bindir()' 2>/dev/null \
		|| { [ -n "$$DATABASE_URL" ] && [ -n "$$PGFRAUD_TEST_DATABASE_URL" ]; }; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing PostgreSQL from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "installing PostgreSQL 16 from the pgserver wheel"; \
		$(BIN)/python -m pip install --quiet 'pgserver>=0.1.4'; \
	fi

# The browser tests (tests/test_pages.py) drive Debian's Chromium through
# Playwright (never Playwright's own browser downloads).
browser: ## Make sure Chromium is there for the browser tests (Debian's chromium, chromium-driver)
	@if [ -x /usr/bin/chromium ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Chromium from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "error: the browser tests need Chromium at /usr/bin/chromium; install it as root:" >&2; \
		echo "  apt-get install chromium chromium-driver   (or run make test as root)" >&2; \
		exit 1; \
	fi

run: install ## Serve the API on http://127.0.0.1:5000 (seeds 100,000 transactions on first run)
	$(BIN)/pgfraud run

seed: install ## Add N (default 10000) generated transactions to the database, by COPY
	$(BIN)/pgfraud migrate
	$(BIN)/pgfraud generate --to copy --append --num-transactions $(N) --seed $(SEED) \
		--labels .pgfraud/labels-$(SEED).csv

test: install browser ## Run the tests against a throwaway PostgreSQL
	$(BIN)/pytest -q

# Needs an installed Citus for the machine's PostgreSQL (citus.so, citus.control);
# nothing here builds it. Starts a coordinator and two workers on ports
# 25140-25142 (CITUS_PORTS), runs tests_citus/, stops them. `make test` does
# not collect tests_citus/ (pyproject.toml testpaths), and CI does not run it.
test-citus: install ## Run the Citus tests on a throwaway coordinator and two workers (needs Citus installed)
	@$(BIN)/python -m tests_citus.cluster check
	$(BIN)/pytest -q -p no:cacheprovider tests_citus

FLOORS := .venv-floors
test-floors: postgres browser ## Run the tests with the lowest dependency versions allowed (.ci/floors.txt)
	rm -rf $(FLOORS)
	$(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install --quiet -r .ci/floors.txt
	PYTHONWARNINGS='ignore:Editable installation' $(FLOORS)/bin/python -m pip install --quiet --no-deps -e .
	$(FLOORS)/bin/pytest -q -p no:cacheprovider

# A second major version for CI: PostgreSQL 16 from the pgserver wheel (the
# machine's own is 15); PGFRAUD_PG_BIN makes the tests' server use it.
test-pg16: install ## Run the tests on PostgreSQL 16 (pip-installs the pgserver wheel into .venv)
	$(BIN)/python -m pip install --quiet 'pgserver>=0.1.4'
	@bin="$$($(BIN)/python -W ignore -c 'import pathlib, pgserver; \
		print(pathlib.Path(pgserver.__file__).parent / "pginstall" / "bin")')"; \
	echo "tests on $$("$$bin/postgres" --version)"; \
	PGFRAUD_PG_BIN="$$bin" $(MAKE) test

bench: install ## Measure the data paths against psql/pgbench and a peer (BENCH_N=1000000)
	@$(BIN)/python -c 'import pandas' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }; } \
		|| echo "wrk not found (as root: apt-get install wrk): no HTTP figures"
	$(BIN)/python -m benchmarks
	@# What one shadow rule adds to a single POST's p50/p99 (docs/performance.md).
	$(BIN)/python -m benchmarks.shadow_cost

lint: install ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff format and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

db-url: install ## Print the database URL (for psql)
	@$(BIN)/pgfraud db url

clean: ## Remove caches (keeps .venv and the local database)
	rm -rf .pytest_cache .ruff_cache .hypothesis build *.egg-info

# The local database's data is in .pgfraud/data, or in /var/tmp/pgfraud-<hash>
# when the server's user cannot enter this folder (as root): `pgfraud db
# destroy` removes it wherever it lives.
distclean: clean ## Remove .venv and the local database (wherever its data lives)
	-@if [ -x $(BIN)/pgfraud ]; then \
		PGFRAUD_HOME=$(CURDIR)/.pgfraud DATABASE_URL= $(BIN)/pgfraud db destroy --yes; \
	elif [ -f .pgfraud/datadir ]; then rm -rf "$$(cat .pgfraud/datadir)"; fi
	rm -rf $(VENV) $(FLOORS) .pgfraud
