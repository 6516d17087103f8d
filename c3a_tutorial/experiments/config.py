"""What defines a fine-tuning run: ``FinetuneConfig``, its defaults and its validation.

The methods are the registry's adapter methods (``c3a_tutorial.c3a.methods``) plus ``"full"``, full
fine-tuning, which is not an adapter: every weight trains. Each adapter method's size is the config
field named as the registry's ``size_argument`` (``block_size`` for C3A, ``rank`` for LoRA).
``experiments.train`` runs a config; ``experiments.finetune`` turns its fields into command-line flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..c3a.methods import METHODS as ADAPTER_METHODS
from ..c3a.methods import get_method
from .data import DATASETS

FULL = "full"  # full fine-tuning: not an adapter, every weight trains
METHODS = (*ADAPTER_METHODS, FULL)  # ("c3a", "lora", "full"): the registry's adapters, then full fine-tuning
# Chosen by the sweep in data/results/lr_sweep.json (notebook 05's CPU configuration): best validation accuracy.
# C3A's ΔW carries scale 1/d_in, so its kernel needs a far larger learning rate than LoRA's to move ΔW as fast.
DEFAULT_LR = {"c3a": 3.0, "lora": 1e-2, FULL: 1e-4}
DEFAULT_HEAD_LR = 3e-3
DEFAULT_TARGET_MODULES = ("query", "value")


@dataclass
class FinetuneConfig:
    """Everything that defines a run. ``None`` for ``lr``/``head_lr`` means the method's default.

    Each adapter method's size has a field named as the registry's ``size_argument`` (``block_size``
    for C3A, ``rank`` for LoRA); only the run's own method reads its size.
    """

    method: str = "c3a"
    model: str | None = None  # None: the bundled all-MiniLM-L6-v2
    dataset: str = "stdlib"
    block_size: int = 24
    rank: int = 8
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

    def resolved_lr(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    def resolved_head_lr(self) -> float:
        return DEFAULT_HEAD_LR if self.head_lr is None else self.head_lr

    def adapter_size(self) -> dict[str, int]:
        """The keyword that sizes this run's adapter, e.g. ``{"block_size": 24}``; ``{}`` for full."""
        if self.method == FULL:
            return {}
        argument = get_method(self.method).size_argument
        return {argument: getattr(self, argument)}


def validate_config(config: FinetuneConfig) -> None:
    """Raise a ``ValueError`` naming the bad setting, before anything is loaded."""
    if config.method not in METHODS:
        raise ValueError(f"method={config.method!r} is not one of {list(METHODS)}.")
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not one of {list(DATASETS)}.")
    sizes = [method.size_argument for method in ADAPTER_METHODS.values()]
    for name in (*sizes, "epochs", "batch_size", "max_length"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    for name in ("train_size", "eval_size", "max_steps"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
    for name in ("lr", "head_lr"):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not 0.0 <= config.warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {config.warmup_fraction!r}.")
    if config.lr is None and config.method not in DEFAULT_LR:
        raise ValueError(f"method={config.method!r} has no default learning rate in DEFAULT_LR: pass lr.")
