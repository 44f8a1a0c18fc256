# Next-best-action decisioning: `make run` serves the demo, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
NBA := $(BIN)/nba
DATA_DIR ?= data
CUSTOMERS ?= 50000
NEW_CUSTOMERS ?= 20000
RETRAIN ?= 0
RETRAIN_DIR ?= retrain
#: extra `nba train` flags for `make retrain`, e.g. TRAIN_FLAGS='--trees 300 --seed 7'
TRAIN_FLAGS ?=
#: pytest-xdist workers of `make test` (0: serially, in one process, the default). Two workers
#: overlap one test's waits with another's CPU, but leave the timing-sensitive tests (faults,
#: hot reload, the 200-client launch) less headroom: bench/results/ci_speed.md, 2026-12-01
TEST_WORKERS ?= 0
PORT ?= 8000
WORKERS ?= 2
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export NBA_STATE_URL ?= sqlite:///state.db
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR ?= false

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/nba: pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,scale]'
	@touch $(BIN)/nba

venv: $(BIN)/nba ## create .venv and install the project (pinned) into it

data: venv ## write the demo data into $(DATA_DIR) if absent
	@test -f $(DATA_DIR)/exposures.parquet || $(NBA) demo-data --customers $(CUSTOMERS) --new-customers $(NEW_CUSTOMERS) --out $(DATA_DIR)

champion: data ## train and promote a champion if there is none (RETRAIN=1: always retrain)
	@if [ "$(RETRAIN)" = "1" ]; then $(NBA) train --data-dir $(DATA_DIR) --promote; \
	elif ! $(NBA) model >/dev/null 2>&1; then $(NBA) train --data-dir $(DATA_DIR); \
	else echo "champion exists: $$($(NBA) model | grep '"version"'); make run RETRAIN=1 retrains"; fi

stock: data ## load the demo stock into the state store if it holds none yet
	@$(NBA) inventory load $(DATA_DIR)/inventory.parquet --if-empty

customers: data ## load the demo customers into the state store if it holds none yet
	@$(NBA) customers load $(DATA_DIR)/customers.parquet --if-empty

run: nginx champion stock customers ## set up, build demo data, train, promote, serve on 127.0.0.1:$(PORT) (dev mode: no API key needed)
	NBA_DEV_MODE=$${NBA_DEV_MODE:-1} $(NBA) serve --host 127.0.0.1 --port $(PORT) --workers $(WORKERS) --data-dir $(DATA_DIR) --customers-from store

browser: ## install Debian's chromium for the browser tests (no Playwright browser download)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

retrain: venv ## retrain from the decision log: export it after the original exposures, train (TRAIN_FLAGS: more `nba train` flags), compare, promote only if not worse
	@mkdir -p $(RETRAIN_DIR)
	$(NBA) export-training --data-dir $(DATA_DIR) --append-to $(DATA_DIR)/exposures.parquet --out $(RETRAIN_DIR)/exposures.parquet
	cp $(DATA_DIR)/offers.yaml $(DATA_DIR)/customers.parquet $(RETRAIN_DIR)/
	@test ! -f $(DATA_DIR)/inventory.parquet || cp $(DATA_DIR)/inventory.parquet $(RETRAIN_DIR)/
	$(NBA) train --data-dir $(RETRAIN_DIR) $(TRAIN_FLAGS)
	$(NBA) promote --version latest --data-dir $(RETRAIN_DIR)

nginx: ## install Debian's nginx, the buffering front `nba serve` starts before gunicorn
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nginx-light; }

test: venv browser nginx java ## run the whole test suite on TEST_WORKERS pytest-xdist workers (installs Debian's chromium, nginx and Java)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: venv ## the inner loop: every test not marked slow (no full training run, no servers)
	$(BIN)/python -m pytest -m "not slow"

lint: venv ## ruff and mypy (configured in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy

java: ## install Debian's Java 17 runtime, which Spark (the `spark` scoring engine and its tests) runs on
	@command -v java >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }

wrk: ## install Debian's wrk, the load generator of bench/bench_online.py
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends wrk; }

bench: venv wrk nginx java ## benchmarks: decision latency, training, allocation, online vs mlflow models serve, batch, cold start, customers in the store, Spark and Dask (~25 min)
	$(BIN)/python bench/run_all.py

bench-quality: venv ## synthetic worlds with known truth (design, held-out, fresh, blind, unseen, sealed: targets met / not met); Hillstrom targets; learners
	$(BIN)/python bench/worlds.py --seeds 5
	$(BIN)/python bench/worlds.py --seeds 5 --held-out
	$(BIN)/python bench/worlds.py --seeds 5 --fresh
	$(BIN)/python bench/worlds.py --seeds 5 --blind
	$(BIN)/python bench/worlds.py --seeds 5 --unseen
	$(BIN)/python bench/worlds.py --seeds 5 --sealed
	$(BIN)/python bench/quality.py --seeds 2
	$(BIN)/python bench/learners.py

mlflow-ui: venv ## the MLflow UI on the same store (runs, metrics, plots, registry aliases)
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

clean: ## remove demo data, the local MLflow store and caches (keeps .venv)
	rm -rf $(DATA_DIR) $(RETRAIN_DIR) mlflow.db state.db state.db-* mlruns/[!.]* .pytest_cache

.PHONY: help venv browser nginx java wrk data champion stock run retrain test test-fast lint bench bench-quality mlflow-ui clean
