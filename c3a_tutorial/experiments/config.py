"""What defines a fine-tuning run: ``FinetuneConfig``, its defaults and its validation.

The methods are declared once in ``experiments.methods``: this package's adapters (C3A, LoRA), PEFT's
baselines (rsLoRA, DoRA, VeRA, FourierFT) and ``"full"``, full fine-tuning, which is not an adapter: every
weight trains. Each adapter's size is the config field its declaration names (``block_size`` for C3A,
``rank`` for the LoRA family and VeRA, ``n_frequency`` for FourierFT).
``experiments.train`` runs a config; ``experiments.finetune`` turns its fields into command-line flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .data import DATASETS
from .methods import EXPERIMENT_METHODS, FULL, get_experiment_method  # noqa: F401 - FULL: re-exported

# The command line's methods: this package's adapters and full fine-tuning (PEFT's baselines run through the
# sweep or from Python, e.g. FinetuneConfig(method="dora")).
METHODS = tuple(name for name, m in EXPERIMENT_METHODS.items() if m.source != "PEFT")  # ("c3a", "lora", "full")
# A single run's learning rate when none is given, from each method's declaration. C3A's ΔW carries scale 1/d_in,
# so its kernel needs a far larger learning rate than LoRA's to move ΔW as fast (data/results/lr_sweep.json).
DEFAULT_LR = {name: m.default_lr for name, m in EXPERIMENT_METHODS.items()}
DEFAULT_HEAD_LR = 3e-3
DEFAULT_TARGET_MODULES = ("query", "value")
# AdamW as every run uses it. The adapter group's ε is multiplied by the adapter's ΔW scale (see train.py), which
# makes "scale s at lr η trains like scale 1 at lr s·η" exact, ε included.
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.0
MAX_GRAD_NORM = 1.0  # gradients are clipped to this norm before every step
# torch.compile's backends a run may ask for: Inductor generates kernels (on the CPU it needs a C++ compiler);
# aot_eager traces forward and backward the same way but runs them with eager kernels (a check, not a speed-up).
COMPILE_BACKENDS = ("inductor", "aot_eager")


@dataclass
class FinetuneConfig:
    """Everything that defines a run. ``None`` for ``lr``/``head_lr`` means the method's default.

    Each adapter's size has the field its declaration names (``block_size`` for C3A, ``rank`` for the LoRA
    family and VeRA, ``n_frequency`` for FourierFT); only the run's own method reads its size.
    """

    method: str = "c3a"
    model: str | None = None  # None: the bundled all-MiniLM-L6-v2
    dataset: str = "stdlib"
    block_size: int = 24
    rank: int = 8
    lora_alpha: float = 8.0  # LoRA family: ΔW = (lora_alpha / r)·B·A (rsLoRA: / √r); PEFT's default, fixed across r
    n_frequency: int = 3072  # FourierFT (PEFT): trained spectral coefficients per layer
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    epochs: int = 3
    lr: float | None = None
    head_lr: float | None = None
    batch_size: int = 16
    max_length: int = 128
    train_size: int | None = None  # first N training examples (the split is already shuffled)
    eval_size: int | None = None  # first N validation and test examples
    max_steps: int | None = None  # stop after this many optimizer steps (tests, quick looks)
    warmup_fraction: float = 0.1
    seed: int = 0
    device: str | None = None
    progress: bool = True
    machine: str | None = None  # a label for the record, e.g. "2-core CPU sandbox"
    # Off by default. compile: torch.compile of the training forward (and so of its backward); cuda_graphs: the same
    # in compile's "reduce-overhead" mode, which replays the step's kernels from CUDA graphs (train.compile_model).
    compile: bool = False
    compile_backend: str = "inductor"  # torch.compile's backend for compile; aot_eager needs no C++ compiler
    cuda_graphs: bool = False

    def resolved_lr(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    def resolved_head_lr(self) -> float:
        return DEFAULT_HEAD_LR if self.head_lr is None else self.head_lr

    def adapter_size(self) -> dict[str, int]:
        """The keyword that sizes this run's adapter, e.g. ``{"block_size": 24}``; ``{}`` for full."""
        size_field = get_experiment_method(self.method).size_field
        return {} if size_field is None else {size_field: getattr(self, size_field)}


def validate_config(config: FinetuneConfig) -> None:
    """Raise a ``ValueError`` naming the bad setting, before anything is loaded."""
    if config.method not in EXPERIMENT_METHODS:
        raise ValueError(f"method={config.method!r} is not one of {list(EXPERIMENT_METHODS)}.")
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not one of {list(DATASETS)}.")
    sizes = sorted({m.size_field for m in EXPERIMENT_METHODS.values() if m.size_field})
    for name in (*sizes, "epochs", "batch_size", "max_length"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    for name in ("train_size", "eval_size", "max_steps"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
    for name in ("lr", "head_lr", "lora_alpha"):
        value = getattr(config, name)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive, finite number, got {value!r}.")
    if not 0.0 <= config.warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {config.warmup_fraction!r}.")
    if config.compile_backend not in COMPILE_BACKENDS:
        raise ValueError(f"compile_backend={config.compile_backend!r} is not one of {list(COMPILE_BACKENDS)}.")
    if config.cuda_graphs and config.compile_backend != "inductor":
        raise ValueError(
            "cuda_graphs (--cuda-graphs) uses torch.compile's reduce-overhead mode, an Inductor mode: "
            f"leave compile_backend (--compile-backend) at 'inductor', not {config.compile_backend!r}."
        )
    if config.lr is None and config.method not in DEFAULT_LR:
        raise ValueError(f"method={config.method!r} has no default learning rate in DEFAULT_LR: pass lr.")
