# Two commands matter on a fresh machine:  `make run` (set up, then the main job on the
# embedded synthetic sample) and `make test` (set up, then the test suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The venv's tools first, so MLproject's `python -m galaxyzoo ...` runs in it.
export PATH := $(abspath $(BIN)):$(PATH)
# Runs go to ./mlflow.db unless the caller names another store.
MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
export MLFLOW_TRACKING_URI

.PHONY: install run sweep test test-fast ui clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: install  ## train on the embedded synthetic sample, tracked in ./mlflow.db
	$(BIN)/mlflow run . --env-manager local --experiment-name galaxyzoo

sweep: install  ## a small Optuna sweep on the embedded sample
	$(BIN)/mlflow run . -e sweep --env-manager local --experiment-name galaxyzoo

# One pytest worker per core; a test module stays on one worker, so its module fixtures are built once.
# Modules go out in collection order, which tests/conftest.py sorts slow modules first.
PYTEST_PARALLEL ?= -n auto --dist loadscope --no-loadscope-reorder

test: install  ## the whole suite, slow end-to-end tests included
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

test-fast: install
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow"

# galaxyzoo uses none of the MLflow server's job runner (8 processes for its GenAI features).
ui: install
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI)

# What the README's commands write in the project folder: the store with its artifacts (mlruns/), the
# locks beside it, training checkpoints (runs/) and predict's and embed's default outputs.
clean:
	rm -rf $(VENV) data mlflow.db mlflow.db.lock mlruns optuna.db optuna.db.lock runs \
		preds.csv predictions.csv embeddings.parquet study.log study.log.sweep.lock
