"""A parameter-budget sweep: every declared method at several budgets, several seeds, each lr chosen on validation.

    python -m c3a_tutorial.sweep --threads 1 & python -m c3a_tutorial.sweep --threads 1   # the stored sweep, 2 cores
    python -m c3a_tutorial.sweep --report-only         # table + figure again from the JSON, nothing trained
    torchrun --nproc_per_node 2 -m c3a_tutorial.sweep  # every run is one DDP run over all processes

A laptop-scale test of the paper's claim that C3A outperforms LoRA and its variants: test accuracy against trainable
adapter parameters on MiniLM's attention ``query``/``value`` (the offline stdlib-docstring task), one line per method
(``experiments.methods`` declares them: C3A and LoRA from this package, rsLoRA, DoRA, VeRA and FourierFT
through PEFT), full fine-tuning as the reference band. On a 384 × 384 layer C3A with block size ``b`` trains
``384²/b`` numbers and LoRA with rank ``r`` trains ``768 r``, so ``b = 192/r`` is the same budget: the
default settings pair (b=192, r=1), (48, 4), (24, 8) and (6, 32), and FourierFT's n=768 and n=3072 sit on the
first and second of those budgets exactly.

**Seeds.** A seed sets the order of the training data and the initialisation (the head, LoRA's ``A``); the
train / validation / test split is the same for every run (``split_seed``, 0), and so is the test set, so two
runs with the same seed are compared seed by seed and example by example (``sweep_report``). C3A and LoRA,
the matched pair, get 5 seeds; the other methods 3.

**Learning rates** are chosen on the *validation* split, never on test, for every method *and setting*: the
method's declared grid (half-decade steps) at seed 0; the lr with the best final-epoch validation accuracy
wins (ties: the smaller lr). A best value at an edge of the grid extends the grid by one step beyond it, up to
``lr_extensions`` times per setting; a choice still at an edge after that is marked in the file. The head's lr
is fixed (``DEFAULT_HEAD_LR``). The chosen run at seed 0 is also the setting's first seed.

**Resumable and safe.** Every finished run is added to one JSON file at once, written atomically (a temporary
file in the same folder, then ``os.replace``), so an interruption loses at most the run in progress, and a
rerun with the same command skips every run already in the file. Several processes can share one file (two
on a 2-core CPU, ``--threads 1`` each): each claims a run before starting it (``sweep_file``). A file that is
not a sweep this code wrote, an older format, or one made with other training settings stops the sweep with a
``SweepFileError`` and is left exactly as it was. A partial file lists what is still missing.

**Devices.** ``--device cuda`` trains under bf16 autocast (``train`` does it; fp16 + GradScaler on GPUs
without bf16). Under ``torchrun`` each run is one DDP run over all processes (the batch size is per process);
every process walks the same list of runs, and only rank 0 writes; claims are not used.

The command line: ``sweep_cli``. Table, figure and the statistics: ``sweep_report`` and ``stats``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..c3a.layers import AdapterLinear
from ..c3a.paths import output_problem
from . import sweep_report
from .backbone import resolve_model
from .config import DEFAULT_HEAD_LR, DEFAULT_LR, FinetuneConfig
from .data import load_dataset
from .device import pick_device
from .methods import EXPERIMENT_METHODS, FULL, adapter_parameter_count, get_experiment_method
from .sweep_file import FORMAT, SweepFileError, live_claims, locked, now, read_results, set_claim, write_atomic
from .train import finetune

DEFAULT_OUTPUT = "data/results/sweep_minilm.json"
SPLIT_SEED = 0  # the train/validation/test split of every run; the run's seed only moves data order and init
MATCHED_SEEDS = (0, 1, 2, 3, 4)  # C3A and LoRA at matched budgets: the comparison the course draws
OTHER_SEEDS = (0, 1, 2)
DEFAULT_SETTINGS: dict[str, tuple] = {
    "c3a": (192, 48, 24, 6),
    "lora": (1, 4, 8, 32),
    "rslora": (1, 32),
    "dora": (1, 8),
    "vera": (256, 1024),
    "fourierft": (768, 3072),
    FULL: (None,),
}
DEFAULT_SEEDS = {m: MATCHED_SEEDS if m in ("c3a", "lora") else OTHER_SEEDS for m in DEFAULT_SETTINGS}
WAIT_S = 15.0  # how long a process with nothing to claim waits for another process's run to unlock more
# What fixes the results of a run besides its method, setting, lr and seed: a file holds runs of one training.
TRAINING_KEYS = (
    "model", "dataset", "epochs", "max_length", "batch_size", "head_lr", "lora_alpha", "train_size", "eval_size",
    "max_steps", "warmup_fraction", "target_modules", "device_type", "split_seed",
)  # fmt: skip


@dataclass
class SweepConfig:
    """What to run. The defaults are the stored sweep (``data/results/sweep_minilm.json``)."""

    settings: dict[str, tuple] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))  # method -> its budgets
    seeds: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_SEEDS))  # method -> seeds
    lr_grid: dict[str, tuple[float, ...]] = field(default_factory=dict)  # replaces a method's declared grid
    lr: dict[str, float] = field(default_factory=dict)  # a method given here skips its grids: every setting uses it
    lr_seeds: tuple[int, ...] = (0,)
    lr_extensions: int = 2  # how often a setting's grid may grow past an edge its best lr sits on
    # The training of every run (see FinetuneConfig).
    model: str | None = None
    dataset: str = "stdlib"
    epochs: int = 3
    max_length: int = 32  # chosen by measurement: README_sweep.md
    batch_size: int = 16
    head_lr: float = DEFAULT_HEAD_LR
    lora_alpha: float = 8.0
    train_size: int | None = None  # None: the whole training split
    eval_size: int | None = None
    max_steps: int | None = None
    warmup_fraction: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")
    device: str | None = None
    machine: str | None = None
    progress: bool = True

    def __post_init__(self):
        for method in (*self.settings, *self.lr_grid, *self.lr):
            get_experiment_method(method)  # a ValueError naming the choices
        for method, sizes in self.settings.items():
            if get_experiment_method(method).is_adapter and any(not isinstance(s, int) or s <= 0 for s in sizes):
                raise ValueError(f"{method}: settings must be positive integers, got {list(sizes)}.")
        for name, values in (*self.lr_grid.items(), *((m, (v,)) for m, v in self.lr.items())):
            if not values or any(not (math.isfinite(v) and v > 0) for v in values):
                raise ValueError(f"{name}: learning rates must be positive, finite numbers, got {list(values)}.")
        if self.lr_extensions < 0:
            raise ValueError(f"lr_extensions must be 0 or more, got {self.lr_extensions}.")

    @property
    def methods(self) -> list[str]:
        return [m for m, sizes in self.settings.items() if sizes]

    def seeds_for(self, method: str) -> tuple[int, ...]:
        return tuple(self.seeds.get(method, OTHER_SEEDS))

    def grid(self, method: str) -> tuple[float, ...]:
        return tuple(sorted(self.lr_grid.get(method, get_experiment_method(method).lr_grid)))

    def training(self, device_type: str) -> dict:
        """The training settings a results file is tied to."""
        values = {k: getattr(self, k) for k in TRAINING_KEYS if hasattr(self, k)}
        values.update(model=self.model or "all-MiniLM-L6-v2", target_modules=list(self.target_modules))
        values.update(device_type=device_type, split_seed=SPLIT_SEED)
        return values

    def finetune_config(self, method: str, setting: int | None, lr: float, seed: int) -> FinetuneConfig:
        size_field = get_experiment_method(method).size_field
        sizes = {size_field: setting} if size_field else {}
        return FinetuneConfig(
            method=method, model=self.model, dataset=self.dataset, target_modules=list(self.target_modules),
            epochs=self.epochs, lr=lr, head_lr=self.head_lr, batch_size=self.batch_size, max_length=self.max_length,
            lora_alpha=self.lora_alpha, train_size=self.train_size, eval_size=self.eval_size,
            max_steps=self.max_steps, warmup_fraction=self.warmup_fraction, seed=seed, device=self.device,
            progress=False, machine=self.machine, **sizes,
        )  # fmt: skip


def reduced_sweep_config(lr: dict[str, float] | None = None, **overrides) -> SweepConfig:
    """A live sweep for a CPU notebook (a few minutes on 2 cores): C3A and LoRA at two matched budgets, two
    seeds, 256 short examples, and fixed learning rates ``lr`` (e.g. the stored sweep's chosen ones)."""
    base = dict(
        settings={"c3a": (24, 96), "lora": (8, 2)}, seeds={"c3a": (0, 1), "lora": (0, 1)}, train_size=256,
        eval_size=None, epochs=2, max_length=32, lr=dict(lr or {}),
    )  # fmt: skip
    return SweepConfig(**{**base, **overrides})


def live_sweep(output: str | os.PathLike = "runs/sweep_live.json", device: str | None = None, **overrides) -> dict:
    """What notebook 05 runs live: on a GPU the whole sweep (with its own lr grids, bf16 autocast); elsewhere
    ``reduced_sweep_config`` at the learning rates the stored sweep chose for the budget of LoRA r=8
    (``DEFAULT_LR`` if none is stored). Resumable like every sweep: a second call with the same ``output`` only
    reads the file."""
    if pick_device(device).type == "cuda":
        return run_sweep(SweepConfig(device=device, **overrides), output)
    lrs = {m: DEFAULT_LR[m] for m in ("c3a", "lora")}
    stored = sweep_report.load_stored_sweep()
    if stored is not None:
        chosen = stored.results.get("learning_rates", {})
        for method, setting in (("c3a", 24), ("lora", 8)):
            lr = chosen.get(unit_key(method, setting), {}).get("chosen")
            if lr is not None:
                lrs[method] = lr
    return run_sweep(reduced_sweep_config(lr=lrs, device=device, **overrides), output)


def unit_key(method: str, setting: int | None) -> str:
    """``"c3a b=24"``, ``"full"``: one method at one budget (a *setting*), the unit an lr is chosen for."""
    return method if setting is None else f"{method} {get_experiment_method(method).setting(setting)}"


def run_id(method: str, setting: int | None, lr: float, seed: int) -> str:
    """``"c3a b=24 lr=3 seed=0"``, ``"full lr=0.0001 seed=1"``: a run's name in the file and on the bar."""
    return f"{unit_key(method, setting)} lr={lr:g} seed={seed}"


# --------------------------------------------------------------------------------------------------
# Learning rates, per setting


def _one_or_three(x: float) -> float:
    """The value of the series ..., 0.1, 0.3, 1, 3, 10, ... nearest to ``x`` on a log scale."""
    k = math.floor(math.log10(x))
    candidates = [m * 10.0**e for e in (k - 1, k, k + 1) for m in (1, 3)]
    return float(f"{min(candidates, key=lambda c: abs(math.log(c / x))):.0e}")


def _grid_step(grid: list[float], upward: bool) -> float:
    """One half-decade step past the top (or bottom) of ``grid``."""
    if len(grid) == 1:
        return _one_or_three(grid[0] * (math.sqrt(10) if upward else 1 / math.sqrt(10)))
    if upward:
        return _one_or_three(grid[-1] * grid[-1] / grid[-2])
    return _one_or_three(grid[0] * grid[0] / grid[1])


def choose_lr(config: SweepConfig, runs_by_id: dict[str, dict], method: str, setting) -> dict:
    """What the validation split says about one setting's lr: ``{"grid": {lr: mean final validation accuracy},
    "chosen": lr or None, "pending": [lrs still to run], "extended": n, "note": ...}``."""
    if method in config.lr:
        return {"grid": {}, "chosen": config.lr[method], "pending": [], "extended": 0, "note": "given"}
    grid, extended = list(config.grid(method)), 0
    while True:
        scores, pending = {}, []
        for lr in grid:
            found = [runs_by_id.get(run_id(method, setting, lr, s)) for s in config.lr_seeds]
            if any(r is None for r in found):
                pending.append(lr)
            else:
                scores[lr] = sum(r["val_accuracy"] for r in found) / len(found)
        result = {"grid": scores, "chosen": None, "pending": pending, "extended": extended, "note": ""}
        if pending:
            return result
        best = max(grid, key=lambda lr: (scores[lr], -lr))  # ties go to the smaller lr
        at_edge = best == grid[0] and len(grid) > 1 or best == grid[-1]
        if at_edge and extended < config.lr_extensions:
            grid = [_grid_step(grid, upward=False), *grid] if best == grid[0] else [*grid, _grid_step(grid, True)]
            extended += 1
            continue
        note = f"best at the edge of its grid after {extended} extension(s)" if at_edge else ""
        return {**result, "chosen": best, "note": note}


def learning_rates(config: SweepConfig, runs: list[dict]) -> dict[str, dict]:
    """Per setting (``"c3a b=24"``): its grid, validation scores, the chosen lr (``None`` while pending)."""
    by_id = {r["run_id"]: r for r in runs}
    out = {}
    for method in config.methods:
        for setting in config.settings[method]:
            info = choose_lr(config, by_id, method, setting)
            out[unit_key(method, setting)] = {
                "method": method,
                "setting": setting,
                "chosen": info["chosen"],
                "chosen_by": "given" if info["note"] == "given" else "best mean final-epoch validation accuracy",
                "seeds": list(config.lr_seeds),
                "grid": {f"{lr:g}": round(score, 4) for lr, score in sorted(info["grid"].items())},
                "extended": info["extended"],
                "note": "" if info["note"] == "given" else info["note"],
            }
    return out


# --------------------------------------------------------------------------------------------------
# The plan


def planned_runs(config: SweepConfig, runs: list[dict], shape: tuple[int, int] = (384, 384)) -> tuple[list[tuple], int]:
    """``([(phase, method, setting, lr, seed), ...] known so far, in running order; runs planned in all)``.

    A setting's main runs are known once its lr is; until then the total counts its grid plus its seeds.
    ``shape``: a target layer's ``(d_out, d_in)``, for the order only.
    """
    by_id = {r["run_id"]: r for r in runs}
    most_seeds = max((len(config.seeds_for(m)) for m in config.methods), default=0)
    plan, total = [], 0
    for method in config.methods:
        seeds = config.seeds_for(method)
        for setting in config.settings[method]:
            info = choose_lr(config, by_id, method, setting)
            grid_items = [] if method in config.lr else sorted({*info["grid"], *info["pending"]})
            items = [("lr grid", method, setting, lr, s) for lr in grid_items for s in config.lr_seeds]
            if info["chosen"] is not None:
                items += [("main", method, setting, info["chosen"], s) for s in seeds]
            unique = {run_id(*item[1:]): item for item in reversed(items)}  # a grid run that is also a main run
            plan += unique.values()
            # A pending setting will reuse the grid's runs at the chosen lr for the seeds they share.
            shared = len(set(seeds) & set(config.lr_seeds)) if grid_items else 0
            total += len(unique) if info["chosen"] is not None else len(items) + len(seeds) - shared

    # The order a sweep stopped early is most useful in: the methods with the most seeds (the matched pair)
    # first; within them the lr grids, then seed by seed (whole curves for the first seeds), smallest budget
    # first with the methods taking turns (matched pairs finish together); full fine-tuning (twice the cost of a
    # run) last.
    def order(item):
        phase, method, setting, lr, seed = item
        declared = get_experiment_method(method)
        budget = declared.adapter_parameters([shape], setting) if declared.is_adapter else math.inf
        seeds = config.seeds_for(method)
        tier = 0 if len(seeds) == most_seeds and declared.is_adapter else 1
        position = -1 if phase == "lr grid" else seeds.index(seed)
        return (tier, position, method == FULL, budget, list(EXPERIMENT_METHODS).index(method), lr, seed)

    plan.sort(key=order)
    return plan, total


def missing_runs(config: SweepConfig, runs: list[dict]) -> list[str]:
    """What a partial file still lacks: the known runs not yet finished, and the settings whose lr is pending."""
    done = {r["run_id"] for r in runs}
    plan, _ = planned_runs(config, runs)
    missing = [run_id(*item[1:]) for item in plan if run_id(*item[1:]) not in done]
    by_id = {r["run_id"]: r for r in runs}
    for method in config.methods:
        for setting in config.settings[method]:
            if choose_lr(config, by_id, method, setting)["chosen"] is None:
                seeds = ", ".join(map(str, config.seeds_for(method)))
                missing.append(f"{unit_key(method, setting)}: seeds {seeds} at the lr its grid will choose")
    return missing


def _adapter_facts(model) -> dict:
    """Adapter parameters (trainable, not the head) and this package's adapter ``ΔW`` scale, read off the model."""
    scales = {float(m.scale) for m in model.modules() if isinstance(m, AdapterLinear)}
    scale = scales.pop() if len(scales) == 1 else None
    return {"adapter_params": adapter_parameter_count(model), "adapter_scale": scale}


# --------------------------------------------------------------------------------------------------
# Running


def check_output(output: Path, force: bool = False) -> None:
    """Refuse, before any run, an output the sweep could not write or would write over something else's."""
    if output.suffix != ".json":
        raise ValueError(f"--output {output}: give a .json file (its table .md and figure .png go beside it).")
    problem = output_problem(output, "file", create_parents=True)
    if problem:
        raise ValueError(f"--output {output}: {problem}.")
    if not output.exists() and not force:
        for beside in (output.with_suffix(".md"), output.with_suffix(".png")):
            if beside.exists():
                raise ValueError(
                    f"{beside} exists but {output.name} does not: it is not this sweep's report and the sweep would "
                    "overwrite it. Move it, pick another --output, or pass --force."
                )


def run_sweep(
    config: SweepConfig, output: str | os.PathLike = DEFAULT_OUTPUT, data=None, report: bool = True, force=False
) -> dict:
    """Run every planned run not yet in ``output`` and return the file's contents; write table and figure.

    ``data``: the ``TextDataset`` (default: ``load_dataset(config.dataset, seed=SPLIT_SEED)``).
    """
    from tqdm.auto import tqdm

    output = Path(output)
    check_output(output, force)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    shared = world_size == 1  # one process per run: other processes may work on the same file
    training = config.training(_device(config, world_size).type)
    with locked(output):
        results = _read_or_start(output, training)
    data = load_dataset(config.dataset, seed=SPLIT_SEED) if data is None else data
    shape = _layer_shape(config)
    bar = tqdm(total=0, desc="sweep", unit="run", disable=not (config.progress and rank == 0))
    while True:
        with locked(output):
            if shared:
                results = _read_or_start(output, training)
            plan, total = planned_runs(config, results["runs"], shape)
            done = {r["run_id"] for r in results["runs"]}
            busy = live_claims(output) if shared else {}
            todo = [item for item in plan if run_id(*item[1:]) not in done | set(busy)]
            if todo and shared:
                set_claim(output, run_id(*todo[0][1:]), True)
        bar.total, bar.n = total, len(done & {run_id(*item[1:]) for item in plan})
        bar.refresh()
        if not todo:
            if busy and len(done) < total:  # another process's run may unlock more (an lr choice)
                bar.set_description(f"waiting for {len(busy)} run(s) of other processes")
                time.sleep(WAIT_S)
                continue
            break
        phase, method, setting, lr, seed = todo[0]
        name = run_id(method, setting, lr, seed)
        bar.set_description(name)
        try:
            record = _one_run(config, phase, method, setting, lr, seed, data, name)
        except BaseException:
            if shared:
                with locked(output):
                    set_claim(output, name, False)
            raise
        with locked(output):
            # The record goes in and the claim goes away in one locked step: between two steps another process saw
            # the run neither claimed nor done, and ran it again (caught by the two-process test).
            try:
                if shared:
                    results = _read_or_start(output, training)
                if name not in {r["run_id"] for r in results["runs"]}:
                    results["runs"].append(record)
                if rank == 0:
                    _write(output, results, config)
            finally:
                if shared:
                    set_claim(output, name, False)
    bar.set_description("sweep")
    bar.close()
    with locked(output):
        if shared:
            results = _read_or_start(output, training)
        _finish(results, config)
        if rank == 0 and results["runs"]:
            _write(output, results, config)
            if report:
                sweep_report.write_report(results, output)
    return results


def _one_run(config: SweepConfig, phase, method, setting, lr, seed, data, name) -> dict:
    # A diverged run is recorded (its accuracy tells the lr search), not stopped: stop_on_nonfinite_loss=False.
    result = finetune(config.finetune_config(method, setting, lr, seed), data=data, stop_on_nonfinite_loss=False)
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
    return record


def _read_or_start(output: Path, training: dict) -> dict:
    """The file's sweep (refused untouched if made with other training settings), or a new, empty one."""
    stored = read_results(output)
    if stored is not None and stored["training"] != training:
        old = stored["training"]
        differ = {k: (old.get(k), v) for k, v in training.items() if old.get(k) != v}
        raise SweepFileError(
            f"{output} holds a sweep with other training settings (file, now): {differ}. It was left untouched; "
            "use the same settings to resume, or another --output."
        )
    return stored or {"format": FORMAT, "created": now(), "training": training, "runs": []}


def _layer_shape(config: SweepConfig) -> tuple[int, int]:
    """``(hidden, hidden)``: the shape of a BERT-like model's query/value (orders the runs; 384 if unknown)."""
    try:
        import transformers

        # Offline: a hub id not in the local cache must not cost network retries for an ordering detail.
        path = resolve_model(config.model)
        hidden = int(transformers.AutoConfig.from_pretrained(path, local_files_only=True).hidden_size)
    except Exception:  # noqa: BLE001 - only the order of the runs depends on it
        hidden = 384
    return hidden, hidden


def _device(config: SweepConfig, world_size: int):
    """The device ``finetune`` will use (under torchrun: CUDA if there is one, else the CPU)."""
    if world_size > 1 and config.device is None:
        return pick_device("cuda" if torch.cuda.is_available() else "cpu")
    return pick_device(config.device)


def plan_fields(config: SweepConfig) -> dict:
    """The plan as the file stores it (JSON-able)."""
    keep = ("settings", "seeds", "lr_grid", "lr", "lr_seeds", "lr_extensions")
    plan = json.loads(json.dumps({k: v for k, v in asdict(config).items() if k in keep}))
    plan["lr_grid"] = {m: list(config.grid(m)) for m in config.methods if m not in config.lr}
    return plan


def _finish(results: dict, config: SweepConfig) -> None:
    """Refresh what the file says about itself: the plan, the lr choices, complete or partial and what is missing."""
    plan, total = planned_runs(config, results["runs"])
    done = {r["run_id"] for r in results["runs"]}
    finished = sum(1 for item in plan if run_id(*item[1:]) in done)
    missing = missing_runs(config, results["runs"])
    results["plan"] = plan_fields(config)
    results["learning_rates"] = learning_rates(config, results["runs"])
    results["runs_planned"] = total
    results["runs_finished"] = finished
    results["missing"] = missing
    results["status"] = "complete" if not missing else f"partial: {finished} of {total} planned runs finished"
    results["updated"] = now()


def _write(output: Path, results: dict, config: SweepConfig) -> None:
    _finish(results, config)
    write_atomic(output, json.dumps(results, indent=1) + "\n")


__all__ = [
    "FORMAT",
    "DEFAULT_OUTPUT",
    "DEFAULT_SETTINGS",
    "DEFAULT_SEEDS",
    "SweepConfig",
    "SweepFileError",
    "check_output",
    "reduced_sweep_config",
    "live_sweep",
    "unit_key",
    "run_id",
    "read_results",
    "choose_lr",
    "learning_rates",
    "planned_runs",
    "missing_runs",
    "run_sweep",
]
