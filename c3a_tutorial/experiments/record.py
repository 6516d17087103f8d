"""The record of one fine-tuning run, and the table that compares runs.

``train`` measures a ``TrainingLog``; ``make_record`` turns it, with the run's set-up and its test
metrics, into one JSON-able dict: method and size, accuracy, loss curve, trainable parameters, peak
memory, time per step, device, seed and versions (``data/README.md`` describes it; kept records are
in ``data/results/``). ``format_table`` prints one row per record, labelling each
adapter's size as the method registry does (``b=24``, ``r=8``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .backbone import DEFAULT_MODEL
from .config import ADAM_EPS, MAX_GRAD_NORM, WEIGHT_DECAY
from .data import majority_baseline
from .measure import describe_machine, versions
from .methods import EXPERIMENT_METHODS, get_experiment_method

if TYPE_CHECKING:  # only for annotations: train imports this module
    from .train import Run


@dataclass
class TrainingLog:
    """What ``train`` measured: the loss of every step, its time, and the evaluation after each epoch."""

    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    peak_memory_bytes: int = 0
    peak_memory_kind: str = ""

    @property
    def steps(self) -> int:
        return len(self.losses)


def make_record(run: Run, log: TrainingLog, test_metrics: dict, checksums: list[float]) -> dict:
    """The run's JSON-able record (its keys are listed in ``data/README.md``)."""
    config, data = run.config, run.data
    timed = log.step_times[1:] or log.step_times  # the first step pays for one-off set-up
    own = get_experiment_method(config.method)
    sizes = {  # every size field: the run's own method's value, None for the others
        m.size_field: getattr(config, m.size_field) if m.size_field == own.size_field else None
        for m in EXPERIMENT_METHODS.values()
        if m.size_field
    }
    if own.size_field == "rank":
        sizes["lora_alpha"] = config.lora_alpha if config.method != "vera" else None
    return {
        "method": config.method,
        "model": config.model or DEFAULT_MODEL,
        "dataset": data.name,
        "num_labels": data.num_labels,
        **sizes,
        "target_modules": list(config.target_modules) if own.is_adapter else None,
        "accuracy": test_metrics["accuracy"],
        "test_correct": test_metrics.get("correct"),  # "1"/"0" per test example, in the split's order
        "test_loss": test_metrics["loss"],
        "majority_baseline": majority_baseline(data.train, run.test_set),
        "eval": log.history,
        "loss_curve": log.losses,
        "trainable_params": run.trainable,
        "total_params": run.total,
        "peak_memory_mb": round(log.peak_memory_bytes / 2**20, 1),
        "peak_memory_kind": log.peak_memory_kind,
        "time_per_step_s": round(sum(timed) / len(timed), 4),
        "steps": log.steps,
        "wall_time_s": round(log.wall_s, 1),
        "lr": config.resolved_lr(),
        "head_lr": config.resolved_head_lr(),
        "optimizer": {
            "name": "AdamW",
            "eps": ADAM_EPS,
            "adapter_eps": "eps × the adapter's ΔW scale (this package's adapters)",
            "weight_decay": WEIGHT_DECAY,
            "max_grad_norm": MAX_GRAD_NORM,
            "schedule": f"linear warm-up over {config.warmup_fraction:g} of the steps, then linear decay to 0",
        },  # fmt: skip
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "train_size": len(run.train_set),
        "eval_size": len(run.test_set),
        "device": str(run.device),
        "precision": run.precision,
        # --compile / --cuda-graphs: what was asked and what ran (the backend, after any fallback); None when off
        "compile": run.compiled,
        "world_size": run.world_size,
        "rank_checksums": checksums,
        "seed": config.seed,
        "machine": describe_machine(run.device, config.machine),
        "versions": versions(),
    }


def setting_label(record: dict) -> str:
    """How tables label a run's budget: ``"b=24"``, ``"r=8"`` (the declaration's ``setting``), ``"-"`` for full."""
    method = get_experiment_method(record["method"])
    return method.setting(record[method.size_field] if method.size_field else None)


def format_table(records: list[dict]) -> str:
    """One row per run: method, setting, accuracy, trainable parameters, peak memory, time per step."""
    head = f"{'method':<6} {'setting':>8} {'test acc':>9} {'trainable':>11} {'peak mem MB':>12} {'s/step':>8}"
    rows = [head, "-" * len(head)]
    for r in records:
        rows.append(
            f"{r['method']:<6} {setting_label(r):>8} {r['accuracy']:>9.3f} {r['trainable_params']:>11,d} "
            f"{r['peak_memory_mb']:>12.1f} {r['time_per_step_s']:>8.3f}"
        )
    return "\n".join(rows)
