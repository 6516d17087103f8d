"""A parameter-budget sweep: C3A at several block sizes, LoRA at several ranks, full fine-tuning, several seeds.

    python -m c3a_tutorial.sweep                       # the stored sweep: lr grid on validation, then the main grid
    python -m c3a_tutorial.sweep --report-only         # table + figure again from the JSON, nothing trained
    torchrun --nproc_per_node 2 -m c3a_tutorial.sweep  # every run is one DDP run over all processes

The experiment behind the paper's Figure 1 at laptop scale: test accuracy against trainable adapter parameters
on MiniLM's attention ``query``/``value`` (the offline stdlib-docstring task), one line per method, full
fine-tuning as the reference band, error bars over seeds. The default settings pair up exactly: on a
384 × 384 layer C3A with block size ``b`` trains ``384²/b`` numbers and LoRA with rank ``r`` trains ``768 r``,
so ``b = 192/r`` gives the same budget: (b=192, r=1), (96, 2), (48, 4), (24, 8), (12, 16), (6, 32); b=384
(4.6k parameters) has no LoRA partner.

**Seeds.** A seed sets the order of the training data and the initialisation (the head, LoRA's ``A``); the
train / validation / test split is the same for every run (``split_seed``, 0). Runs with the same seed see
the same batches, so C3A and LoRA at one budget are compared seed by seed (``sweep_report.paired_comparison``).

**Learning rates** are chosen on the *validation* split, never on test: first a small grid per method at one
reference setting (C3A b=24, LoRA r=8, full; seed 0 by default), then every run of that method uses the lr with
the best mean final-epoch validation accuracy. The head's lr is fixed (``DEFAULT_HEAD_LR``). C3A's ``ΔW``
carries the scale ``1/d_in``; under Adam, lr ``η`` at scale ``s`` trains exactly like lr ``s·η`` at scale 1,
so each record also stores ``lr_times_scale``, the lr in the units LoRA's (scale 1) lr is quoted in.

**Resumable and safe.** Every finished run is added to one JSON file at once, written atomically (a temporary
file in the same folder, then ``os.replace``), so an interruption loses at most the run in progress, and a
rerun with the same command skips every run already in the file. A file that is not a sweep this code wrote
(invalid JSON, wrong layout) or that was made with other training settings stops the sweep with a
``SweepFileError`` and is left exactly as it was.

**Devices.** ``--device cuda`` trains under bf16 autocast (``finetune`` does it; fp16 + GradScaler on GPUs
without bf16). Under ``torchrun`` each run is one DDP run over all processes (``finetune``'s own DDP: the
batch size is per process, so the global batch is ``world_size × batch_size``); every process reads the file
and walks the same list of runs, and only rank 0 writes. We chose DDP per run over splitting the runs across
ranks because it keeps one writer of the file and one code path; for a small model on many GPUs, several
separate sweeps into separate files (``--block-sizes``/``--ranks`` subsets) use the GPUs better.

The command line: ``sweep_cli``. Table, figure and the paired comparison: ``sweep_report``.
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..c3a.layers import AdapterLinear
from ..c3a.methods import get_method
from . import sweep_report
from .backbone import resolve_model
from .data import load_dataset
from .device import pick_device
from .finetune import DEFAULT_HEAD_LR, DEFAULT_LR, FinetuneConfig, finetune
from .sweep_file import FORMAT, SweepFileError, now, read_results, write_atomic

DEFAULT_OUTPUT = "data/results/sweep_minilm.json"
SPLIT_SEED = 0  # the train/validation/test split of every run; the run's seed only moves data order and init
# In scale-1 units (lr × scale) the C3A grid is 0.3/384 ≈ 7.8e-4 ... 3/384 ≈ 7.8e-3: the same decade as LoRA's.
DEFAULT_LR_GRID = {"c3a": (0.3, 1.0, 3.0), "lora": (3e-3, 1e-2, 3e-2), "full": (3e-5, 1e-4, 3e-4)}
# What fixes the results of a run besides its method, setting, lr and seed: a file holds runs of one training.
TRAINING_KEYS = (
    "model", "dataset", "epochs", "max_length", "batch_size", "head_lr", "train_size", "eval_size",
    "max_steps", "warmup_fraction", "target_modules", "device_type", "split_seed",
)  # fmt: skip


@dataclass
class SweepConfig:
    """What to run. The defaults are the stored sweep (``data/results/sweep_minilm.json``)."""

    block_sizes: tuple[int, ...] = (6, 12, 24, 48, 96, 192, 384)
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    full: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)
    lr_grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(DEFAULT_LR_GRID))
    lr: dict[str, float] = field(default_factory=dict)  # a method given here skips its grid
    lr_seeds: tuple[int, ...] = (0,)
    lr_block_size: int = 24
    lr_rank: int = 8
    # The training of every run (see FinetuneConfig).
    model: str | None = None
    dataset: str = "stdlib"
    epochs: int = 3
    max_length: int = 32  # chosen by measurement: README_sweep.md
    batch_size: int = 16
    head_lr: float = DEFAULT_HEAD_LR
    train_size: int | None = None  # None: the whole training split
    eval_size: int | None = None
    max_steps: int | None = None
    warmup_fraction: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")
    device: str | None = None
    machine: str | None = None
    progress: bool = True

    @property
    def methods(self) -> list[str]:
        return [m for m, on in (("c3a", self.block_sizes), ("lora", self.ranks), ("full", self.full)) if on]

    def settings(self, method: str) -> list[int | None]:
        return {"c3a": list(self.block_sizes), "lora": list(self.ranks), "full": [None]}[method]

    def reference_setting(self, method: str) -> int | None:
        return {"c3a": self.lr_block_size, "lora": self.lr_rank, "full": None}[method]

    def training(self, device_type: str) -> dict:
        """The training settings a results file is tied to."""
        values = {k: getattr(self, k) for k in TRAINING_KEYS if hasattr(self, k)}
        values.update(model=self.model or "all-MiniLM-L6-v2", target_modules=list(self.target_modules))
        values.update(device_type=device_type, split_seed=SPLIT_SEED)
        return values

    def finetune_config(self, method: str, setting: int | None, lr: float, seed: int) -> FinetuneConfig:
        sizes = {"block_size": setting} if method == "c3a" else {"rank": setting} if method == "lora" else {}
        return FinetuneConfig(
            method=method, model=self.model, dataset=self.dataset, target_modules=list(self.target_modules),
            epochs=self.epochs, lr=lr, head_lr=self.head_lr, batch_size=self.batch_size, max_length=self.max_length,
            train_size=self.train_size, eval_size=self.eval_size, max_steps=self.max_steps,
            warmup_fraction=self.warmup_fraction, seed=seed, device=self.device, progress=False,
            machine=self.machine, **sizes,
        )  # fmt: skip


def reduced_sweep_config(lr: dict[str, float] | None = None, **overrides) -> SweepConfig:
    """A live sweep for a CPU notebook (a few minutes on 2 cores): two matched budgets, two seeds, 256 short
    examples, no full fine-tuning, and the learning rates ``lr`` (e.g. the stored sweep's chosen ones)."""
    base = dict(
        block_sizes=(24, 96), ranks=(2, 8), full=False, seeds=(0, 1), train_size=256, eval_size=None,
        epochs=2, max_length=32, lr=dict(lr or {}),
    )  # fmt: skip
    return SweepConfig(**{**base, **overrides})


def live_sweep(output: str | os.PathLike = "runs/sweep_live.json", device: str | None = None, **overrides) -> dict:
    """What notebook 05 runs live: on a GPU the whole sweep (with its own lr grid, bf16 autocast); elsewhere
    ``reduced_sweep_config`` at the stored sweep's chosen learning rates (``DEFAULT_LR`` if none is stored).
    Resumable like every sweep: a second call with the same ``output`` only reads the file."""

    if pick_device(device).type == "cuda":
        return run_sweep(SweepConfig(device=device, **overrides), output)
    lrs = {m: DEFAULT_LR[m] for m in ("c3a", "lora")}
    stored = sweep_report.load_stored_sweep()
    if stored is not None:
        chosen = {m: info.get("chosen") for m, info in stored.results.get("learning_rates", {}).items()}
        lrs.update({m: lr for m, lr in chosen.items() if m in lrs and lr is not None})
    return run_sweep(reduced_sweep_config(lr=lrs, device=device, **overrides), output)


def run_id(method: str, setting: int | None, lr: float, seed: int) -> str:
    """``"c3a b=24 lr=3 seed=0"``, ``"full lr=0.0001 seed=1"``: a run's name in the file and on the bar."""
    label = "full" if method == "full" else f"{method} {get_method(method).setting(setting)}"
    return f"{label} lr={lr:g} seed={seed}"


# --------------------------------------------------------------------------------------------------
# The plan


def choose_lr(runs: list[dict], method: str, grid: tuple[float, ...], setting, seeds) -> tuple[float | None, dict]:
    """``(best lr, {lr: mean final validation accuracy})`` over the grid runs in ``runs``; ``None`` until all
    are there. Ties go to the smaller lr."""
    by_id = {r["run_id"]: r for r in runs}
    scores = {}
    for lr in grid:
        found = [by_id.get(run_id(method, setting, lr, s)) for s in seeds]
        if any(r is None for r in found):
            return None, scores
        scores[lr] = sum(r["val_accuracy"] for r in found) / len(found)
    best = max(sorted(scores), key=lambda lr: scores[lr])  # max keeps the first of equals: the smaller lr
    return best, scores


def learning_rates(config: SweepConfig, runs: list[dict]) -> dict[str, dict]:
    """Per method: the grid, its validation scores, and the lr the main grid uses (``None`` while pending)."""
    out = {}
    for method in config.methods:
        if method in config.lr:
            out[method] = {"chosen": config.lr[method], "chosen_by": "given on the command line", "grid": {}}
            continue
        grid = tuple(config.lr_grid[method])
        best, scores = choose_lr(runs, method, grid, config.reference_setting(method), config.lr_seeds)
        out[method] = {
            "chosen": best,
            "chosen_by": "best mean final-epoch validation accuracy of the grid",
            "reference_setting": config.reference_setting(method),
            "seeds": list(config.lr_seeds),
            "grid": {f"{lr:g}": round(score, 4) for lr, score in scores.items()},
        }
    return out


def planned_runs(config: SweepConfig, runs: list[dict], shape: tuple[int, int] = (384, 384)) -> tuple[list[tuple], int]:
    """``([(phase, method, setting, lr, seed), ...] known so far, in running order; number of distinct runs planned)``.

    The main grid of a method is known once its lr is; the total counts the grid's runs the main grid reuses
    (same method, setting, lr and seed) once. ``shape``: a target layer's ``(d_out, d_in)``, for the order only.
    """
    lrs = learning_rates(config, runs)
    plan, total = [], 0
    for method in config.methods:
        ref = config.reference_setting(method)
        grid = [] if method in config.lr else [(lr, s) for lr in config.lr_grid[method] for s in config.lr_seeds]
        plan += [("lr grid", method, ref, lr, s) for lr, s in grid]
        main = [(setting, s) for setting in config.settings(method) for s in config.seeds]
        shared = {(ref, s) for s in config.lr_seeds} & set(main) if grid else set()
        total += len(grid) + len(main) - len(shared)
        chosen = lrs[method]["chosen"]
        if chosen is not None:
            plan += [("main", method, setting, chosen, s) for setting, s in main]
    # The order a sweep stopped early is most useful in: the adapters' lr grids, then seed by seed (whole curves
    # for the first seeds), within a seed from the smallest budget up, C3A and LoRA taking turns (matched pairs
    # finish together), full fine-tuning (twice the cost of a run) last, its grid just before its first run.
    position = {seed: i for i, seed in enumerate(config.seeds)}

    def order(item):
        phase, method, setting, _, seed = item
        if phase == "lr grid":
            return (0, False, 0, method) if method != "full" else (1, True, -1, method)
        budget = 0 if method == "full" else get_method(method).parameter_count(*shape, setting)
        return (1 + position[seed], method == "full", budget, method)

    plan.sort(key=order)
    unique, seen = [], set()
    for item in plan:
        key = run_id(*item[1:])
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique, total


def _adapter_facts(model) -> dict:
    """Adapter parameters (trainable, not the head) and the adapter's ``ΔW`` scale, read off the model."""

    adapter = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and not n.startswith("classifier."))
    scales = {float(m.scale) for m in model.modules() if isinstance(m, AdapterLinear)}
    return {"adapter_params": adapter, "adapter_scale": scales.pop() if len(scales) == 1 else None}


# --------------------------------------------------------------------------------------------------
# Running


def run_sweep(config: SweepConfig, output: str | os.PathLike = DEFAULT_OUTPUT, data=None, report: bool = True) -> dict:
    """Run every planned run not yet in ``output`` and return the file's contents; write table and figure.

    ``data``: the ``TextDataset`` (default: ``load_dataset(config.dataset, seed=SPLIT_SEED)``).
    """
    from tqdm.auto import tqdm

    output = Path(output)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    training = config.training(_device(config, world_size).type)
    stored = read_results(output)
    if stored is not None and stored["training"] != training:
        old = stored["training"]
        differ = {k: (old.get(k), v) for k, v in training.items() if old.get(k) != v}
        raise SweepFileError(
            f"{output} holds a sweep with other training settings (file, now): {differ}. It was left untouched; "
            "use the same settings to resume, or another --output."
        )
    results = stored or {"format": FORMAT, "created": now(), "training": training, "runs": []}
    data = load_dataset(config.dataset, seed=SPLIT_SEED) if data is None else data

    shape = _layer_shape(config)
    plan, total = planned_runs(config, results["runs"], shape)
    done = {r["run_id"] for r in results["runs"]}
    bar = tqdm(total=total, desc="sweep", unit="run", disable=not (config.progress and rank == 0))
    bar.update(sum(1 for item in plan if run_id(*item[1:]) in done))
    while True:
        todo = [item for item in plan if run_id(*item[1:]) not in done]
        if not todo:
            break
        phase, method, setting, lr, seed = todo[0]
        name = run_id(method, setting, lr, seed)
        bar.set_description(name)
        result = finetune(config.finetune_config(method, setting, lr, seed), data=data)
        record = dict(result.record)
        facts = _adapter_facts(result.model)
        del result
        gc.collect()
        history = record["eval"]
        record.update(
            run_id=name, phase=phase, finished_at=now(), split_seed=SPLIT_SEED, **facts,
            val_accuracy=history[-1]["val_accuracy"], best_val_accuracy=max(e["val_accuracy"] for e in history),
            lr_times_scale=record["lr"] * facts["adapter_scale"] if facts["adapter_scale"] else record["lr"],
        )  # fmt: skip
        results["runs"].append(record)
        done.add(name)
        if rank == 0:
            _save(output, results, config)
        bar.update(1)
        plan, total = planned_runs(config, results["runs"], shape)
        bar.total = total
    bar.set_description("sweep")
    bar.close()
    _finish(results, config)
    if rank == 0 and results["runs"]:
        _save(output, results, config)
        if report:
            sweep_report.write_report(results, output)
    return results


def _layer_shape(config: SweepConfig) -> tuple[int, int]:
    """``(hidden, hidden)``: the shape of a BERT-like model's query/value (orders the runs; 384 if unknown)."""
    try:
        import transformers

        hidden = int(transformers.AutoConfig.from_pretrained(resolve_model(config.model)).hidden_size)
    except Exception:  # noqa: BLE001 - only the order of the runs depends on it
        hidden = 384
    return hidden, hidden


def _device(config: SweepConfig, world_size: int):
    """The device ``finetune`` will use (under torchrun: CUDA if there is one, else the CPU)."""

    if world_size > 1 and config.device is None:
        return pick_device("cuda" if torch.cuda.is_available() else "cpu")
    return pick_device(config.device)


def _finish(results: dict, config: SweepConfig) -> None:
    """Refresh what the file says about itself: the plan, the lr choice, complete or partial."""
    plan, total = planned_runs(config, results["runs"])
    done = {r["run_id"] for r in results["runs"]}
    finished = sum(1 for item in plan if run_id(*item[1:]) in done)
    plan_fields = ("block_sizes", "ranks", "full", "seeds", "lr_grid", "lr", "lr_seeds", "lr_block_size", "lr_rank")
    results["plan"] = json.loads(json.dumps({k: v for k, v in asdict(config).items() if k in plan_fields}))
    results["learning_rates"] = learning_rates(config, results["runs"])
    results["runs_planned"] = total
    results["runs_finished"] = finished
    results["status"] = "complete" if finished >= total else f"partial: {finished} of {total} planned runs finished"
    results["updated"] = now()


def _save(output: Path, results: dict, config: SweepConfig) -> None:
    """Check the file on disk is still a sweep (else stop, untouched), keep any run another process added to
    it, then write ours atomically."""
    on_disk = read_results(output)
    if on_disk is not None:
        ours = {r["run_id"] for r in results["runs"]}
        results["runs"][:0] = [r for r in on_disk["runs"] if r["run_id"] not in ours]
    _finish(results, config)
    write_atomic(output, json.dumps(results, indent=1) + "\n")


__all__ = [
    "FORMAT",
    "DEFAULT_OUTPUT",
    "DEFAULT_LR_GRID",
    "SweepConfig",
    "SweepFileError",
    "reduced_sweep_config",
    "live_sweep",
    "run_id",
    "read_results",
    "choose_lr",
    "learning_rates",
    "planned_runs",
    "run_sweep",
]
