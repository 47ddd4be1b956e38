# Quick start on a fresh machine with Python 3.11: `make plan` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install plan plan-json test clean

# (the grep drops pip's notes about local package folders some machines configure; pip's errors still fail)
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
		| { grep -v "^WARNING: Location 'file:" || true; }
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## Offline plan of the dev stack (override with STACK=... ARGS="--set key=value")
STACK ?= dev
plan: $(STAMP)
	$(BIN)/python -m tools.plan --stack $(STACK) $(ARGS)

plan-json: $(STAMP)
	$(BIN)/python -m tools.plan --stack $(STACK) --json plan.json $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache plan.json
