# The README's two commands: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install system-packages stack-up run test lint down corpora train eval bench

help:
	@echo "make run   - install, start the local stack and the pipeline, ingest samples/"
	@echo "make test  - install, start the local stack, run the whole test suite"
	@echo "make lint  - ruff and mypy"
	@echo "make down  - stop the pipeline processes and the local stack"
	@echo "make eval  - entity-model scores (installs the chinese-poetry corpus first)"
	@echo "make train - train the entity model again (seed 13; torch from the train extra)"
	@echo "make bench - the full benchmark (piaoxi bench; its search corpus comes from make corpora)"

install: system-packages $(STAMP)

system-packages:
	@bash infra/local/install-system.sh

# The virtualenv is (re)installed when pyproject.toml changes. pip honours PIP_FIND_LINKS
# and PIP_* from the environment, so local wheel folders keep working.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

stack-up: install
	$(BIN)/piaoxi stack up

run: stack-up
	bash infra/local/run.sh

# Classical texts (npm chinese-poetry, 350 MB, about 10 s), installed once into .corpora/
# and read only through streams/corpora.py (which refuses the held-out 古文觀止): training
# and evaluation data of the entity model and the OCR eval pages; the tests need it too
# (they prove that no sample, gold sentence or training read comes from 古文觀止).
CORPORA := .corpora/node_modules/chinese-poetry/dist

# pytest's own exit code is the target's: 1 on a failing test, 5 when no test was
# collected; both fail `make test` (and so .ci/run).
test: stack-up $(CORPORA)
	$(BIN)/pytest -ra --durations=15

corpora: $(CORPORA)
$(CORPORA):
	npm install --no-save --no-audit --no-fund --prefix .corpora chinese-poetry@2.0.1

eval: install $(CORPORA)
	$(BIN)/piaoxi eval entities

bench: stack-up $(CORPORA)
	$(BIN)/piaoxi bench

train: install $(CORPORA)
	$(BIN)/python -m pip install -q -e '.[dev,train]'
	$(BIN)/python -m streams.ner.train --seed 13

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

down:
	@test -x $(BIN)/piaoxi || { echo "nothing installed"; exit 0; }
	bash infra/local/run.sh stop
	$(BIN)/piaoxi stack down
