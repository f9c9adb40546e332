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
# The demo backfills DEMO_FROM..DEMO_PREV, then the nightly DAG runs the night of DEMO_DATE
# (logical date DEMO_NEXT 02:00 IST) and the intraday DAG tops up DEMO_NEXT at 14:00. The
# history must cover what training needs: 28 days + 7 x (3 backtest + 2 validation origins).
DEMO_FROM     ?= 2025-02-22
DEMO_PREV     ?= 2025-04-28
DEMO_DATE     ?= 2025-04-29
DEMO_NEXT     ?= 2025-04-30
PYTEST_ARGS   ?=

.PHONY: help install demo test lint bench airflow mlflow clean distclean

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

demo: install ## a small world, two months of history, then both DAGs through `airflow dags test`
	$(BIN)/replenish generate --scenario $(DEMO_SCENARIO) --start $(DEMO_START) --days $(DEMO_DAYS)
	$(BIN)/replenish warehouse start
	$(BIN)/replenish warehouse migrate
	@echo "demo: backfilling the history the nightly run learns from ($(DEMO_FROM)..$(DEMO_PREV))"
	$(BIN)/replenish run ingest --from $(DEMO_FROM) --to $(DEMO_PREV)
	$(BIN)/replenish run validate_raw --from $(DEMO_FROM) --to $(DEMO_PREV)
	$(BIN)/replenish run build_features --from $(DEMO_FROM) --to $(DEMO_PREV)
	@echo "demo: the nightly DAG for the night of $(DEMO_DATE), then an intraday run"
	$(AIRFLOW_ENV) REPLENISH_MODEL_PROFILE=quick $(BIN)/airflow db migrate >/dev/null
	$(AIRFLOW_ENV) REPLENISH_MODEL_PROFILE=quick $(BIN)/airflow dags test replenish_nightly \
	  $(DEMO_NEXT)T02:00:00+05:30 > $(REPLENISH_HOME)/demo-nightly.log 2>&1 || \
	  { tail -40 $(REPLENISH_HOME)/demo-nightly.log; exit 1; }
	$(AIRFLOW_ENV) $(BIN)/airflow dags test replenish_intraday $(DEMO_NEXT)T14:00:00+05:30 \
	  > $(REPLENISH_HOME)/demo-intraday.log 2>&1 || \
	  { tail -40 $(REPLENISH_HOME)/demo-intraday.log; exit 1; }
	@echo
	$(BIN)/replenish summary --date $(DEMO_DATE)
	@echo "demo: DAG logs in $(REPLENISH_HOME)/demo-nightly.log and demo-intraday.log"

test: install ## run the whole test suite (real Spark, PostgreSQL)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install ## ruff on everything, mypy on the pure packages
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install ## every benchmark side by side, peers included, into bench/RESULTS.md (< 1 h; QUICK=1: minutes)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python bench/run_all.py $(if $(QUICK),--quick) $(BENCH_ARGS)

AIRFLOW_ENV = PATH="$(abspath $(BIN)):$$PATH" REPLENISH_HOME="$(abspath $(REPLENISH_HOME))" \
  AIRFLOW_HOME="$(abspath $(REPLENISH_HOME))/airflow" AIRFLOW__CORE__DAGS_FOLDER="$(abspath dags)" \
  AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__PARALLELISM=2 \
  AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=2 PYSPARK_PYTHON="$(abspath $(BIN))/python"

airflow: install ## Airflow standalone with the project's DAGs, parallelism 2 (UI on :8080)
	$(AIRFLOW_ENV) $(BIN)/airflow standalone

mlflow: install ## the MLflow UI on $(REPLENISH_HOME)'s store (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(abspath $(REPLENISH_HOME))/mlflow/mlflow.db" \
	  --port 5000

clean: ## stop the embedded warehouse and delete $(REPLENISH_HOME)
	-@test -x $(BIN)/replenish && $(BIN)/replenish warehouse stop
	rm -rf $(REPLENISH_HOME)

distclean: clean ## also delete the virtual environment
	rm -rf $(VENV) *.egg-info
