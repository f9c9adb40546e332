# replenish — run `make help` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export REPLENISH_HOME ?= $(CURDIR)/var
export PYSPARK_PYTHON := $(CURDIR)/$(BIN)/python
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(BIN)/python

DEMO_SCENARIO ?= small
DEMO_START    ?= 2025-01-01
DEMO_DAYS     ?= 120
PYTEST_ARGS   ?=

.PHONY: help install demo test lint bench clean distclean

help: ## show this list
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: REPLENISH_HOME=$(REPLENISH_HOME) DEMO_SCENARIO=$(DEMO_SCENARIO) DEMO_DAYS=$(DEMO_DAYS)"

install: $(STAMP) ## create .venv and install replenish with pinned versions (quick when done)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@command -v java >/dev/null || echo "install: WARNING java (17) is not on PATH; Spark needs it"
	@test -f /usr/share/java/postgresql.jar || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "install: PostgreSQL JDBC driver for Spark (Debian libpostgresql-jdbc-java)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java >/dev/null; }; \
	  else echo "install: note: no PostgreSQL JDBC jar; ingest from PostgreSQL needs REPLENISH_JDBC_JAR"; fi; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: install ## generate a small world, start the warehouse, show what is there
	$(BIN)/replenish generate --scenario $(DEMO_SCENARIO) --start $(DEMO_START) --days $(DEMO_DAYS)
	$(BIN)/replenish warehouse start
	$(BIN)/replenish warehouse migrate
	$(BIN)/replenish stats
	@echo
	@echo "demo: the world is in $(REPLENISH_HOME)/lake and the warehouse is migrated."
	@echo "demo: NOTE the nightly pipeline (features, models, plan, publish) is not built yet;"
	@echo "demo: the demo stops after data generation. See 'issues' 3-6."
	@echo "demo: explore with '$(BIN)/replenish --help' and '$(BIN)/replenish warehouse psql'."

test: install ## run the whole test suite (real Spark, PostgreSQL)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install ## ruff on everything, mypy on the pure packages
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install ## run the benchmarks and update bench/RESULTS.md
	$(BIN)/python bench/bench_generate.py

clean: ## stop the embedded warehouse and delete $(REPLENISH_HOME)
	-@test -x $(BIN)/replenish && $(BIN)/replenish warehouse stop
	rm -rf $(REPLENISH_HOME)

distclean: clean ## also delete the virtual environment
	rm -rf $(VENV) *.egg-info
