"""Fine-tune a pretrained encoder with C3A, LoRA or full fine-tuning, and record what it cost.

    python -m c3a_tutorial.finetune --method c3a --block-size 24 --epochs 3
    torchrun --nproc_per_node 2 -m c3a_tutorial.finetune --method lora --rank 8   # DDP, several processes

One run = load the model (``models.load_classifier``), wrap ``target_modules`` with adapters (or train
everything for ``full``), train with AdamW, evaluate on the validation split after each epoch, then
report test accuracy. The result is one JSON-able record: method, accuracy, loss curve, trainable
parameters, peak memory, time per step, device, seed and versions.

Two learning rates: ``lr`` for the adapter (every parameter but the head for ``full``) and ``head_lr``
for the freshly initialised classifier. C3A needs a far larger adapter lr than LoRA because its
``ΔW`` is scaled by ``1/d_in`` (see ``C3ALinear``); ``DEFAULT_LR`` holds what our lr sweep found
(``data/results/lr_sweep.json``, README "Fine-tuning").

Devices: CUDA → MPS → CPU (``pick_device``), ``--device`` to override. On CUDA the forward runs under
autocast (bf16 where supported, else fp16 with a gradient scaler); the C3A FFTs stay in float32.
Nothing here touches CUDA at import time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from dataclasses import dataclass, field, replace

import torch

from ..c3a.counting import valid_block_sizes
from ..c3a.inject import add_adapters, name_matches, trainable_parameters
from .backbone import load_classifier
from .data import DATASETS, TextDataset, load_dataset, majority_baseline
from .device import pick_device
from .measure import PeakMemory, describe_machine, versions

METHODS = ("c3a", "lora", "full")
# Chosen by the sweep in data/results/lr_sweep.json (notebook 05's CPU configuration): best validation accuracy.
# C3A's ΔW carries scale 1/d_in, so its kernel needs a learning rate ~300x LoRA's to move ΔW as fast.
DEFAULT_LR = {"c3a": 3.0, "lora": 1e-2, "full": 1e-4}
DEFAULT_HEAD_LR = 3e-3
DEFAULT_TARGET_MODULES = ("query", "value")


@dataclass
class FinetuneConfig:
    """Everything that defines a run. ``None`` for ``lr``/``head_lr`` means the method's default."""

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


def validate_config(config: FinetuneConfig) -> None:
    """Raise a ``ValueError`` naming the bad setting, before anything is loaded."""
    if config.method not in METHODS:
        raise ValueError(f"method={config.method!r} is not one of {list(METHODS)}.")
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not one of {list(DATASETS)}.")
    for name in ("block_size", "rank", "epochs", "batch_size", "max_length"):
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


# --------------------------------------------------------------------------------------------------
# The model


def build_model(config: FinetuneConfig, num_labels: int):
    """``(model, tokenizer)``: the pretrained encoder with a fresh head, adapted as ``config`` says."""
    model, tokenizer = load_classifier(config.model, num_labels=num_labels, seed=config.seed)
    if config.method == "full":
        model.requires_grad_(True)
    else:
        kwargs = {"block_size": config.block_size} if config.method == "c3a" else {"rank": config.rank}
        add_adapters(model, config.method, config.target_modules, trainable_modules=["classifier"], **kwargs)
    return model, tokenizer


def parameter_groups(model: torch.nn.Module, lr: float, head_lr: float) -> list[dict]:
    """Two AdamW groups: the classifier head at ``head_lr``, every other trainable parameter at ``lr``."""
    head, body = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head if name.startswith("classifier.") or ".classifier." in name else body).append(param)
    return [g for g in ({"params": body, "lr": lr}, {"params": head, "lr": head_lr}) if g["params"]]


# --------------------------------------------------------------------------------------------------
# Distributed data parallel (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK)


def _distributed_setup(config: FinetuneConfig):
    """``(rank, world_size, device)``; starts the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, pick_device(config.device)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = pick_device(wanted)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world_size, device


def _autocast(device: torch.device):
    """``(context, scaler, precision)``: bf16 autocast where supported, fp16 + GradScaler on older GPUs,
    else nothing (float32)."""
    if device.type != "cuda":
        return contextlib.nullcontext, None, "float32"
    if torch.cuda.is_bf16_supported():
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None, "bf16 autocast"
    scaler = torch.amp.GradScaler("cuda")
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), scaler, "fp16 autocast + GradScaler"


# --------------------------------------------------------------------------------------------------
# Training


def _batches(examples, tokenizer, config, sampler=None, shuffle=False, generator=None):
    def collate(batch):
        texts, labels = zip(*batch, strict=True)
        encoded = tokenizer(
            list(texts), padding=True, truncation=True, max_length=config.max_length, return_tensors="pt"
        )
        encoded["labels"] = torch.tensor(labels)
        return encoded

    return torch.utils.data.DataLoader(
        examples,
        batch_size=config.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        collate_fn=collate,
        generator=generator,
    )


@torch.no_grad()
def evaluate(model, loader, device, autocast=contextlib.nullcontext) -> dict[str, float]:
    """Mean loss and accuracy over ``loader``."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            out = model(**batch)
        total_loss += out.loss.float().item() * len(batch["labels"])
        correct += (out.logits.argmax(-1) == batch["labels"]).sum().item()
        count += len(batch["labels"])
    model.train(was_training)
    return {"loss": total_loss / count, "accuracy": correct / count}


def predict(model, tokenizer, texts: list[str], max_length: int = 128, batch_size: int = 32) -> torch.Tensor:
    """Logits of ``model`` for ``texts`` (eval mode, no gradients), on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            outputs.append(model(**encoded).logits.float())
    return torch.cat(outputs)


def _checksum(model) -> float:
    return float(sum(p.detach().double().sum().item() for p in model.parameters() if p.requires_grad))


@dataclass
class FinetuneResult:
    """What ``finetune`` returns: the JSON record, the trained model and what it was trained with."""

    record: dict
    model: torch.nn.Module
    tokenizer: object
    data: TextDataset


def finetune(config: FinetuneConfig | None = None, data: TextDataset | None = None, **overrides) -> FinetuneResult:
    """Run one fine-tuning as ``config`` (or keyword overrides of the defaults) says.

    Under ``torchrun`` every process trains on its share of each batch through DDP; only rank 0 prints
    progress; every rank returns the same record.
    """
    from tqdm.auto import tqdm

    config = FinetuneConfig(**overrides) if config is None else config
    validate_config(config)
    rank, world_size, device = _distributed_setup(config)
    distributed = world_size > 1
    main_process = rank == 0
    torch.manual_seed(config.seed)

    data = load_dataset(config.dataset, seed=config.seed) if data is None else data
    train_set = data.train[: config.train_size] if config.train_size else data.train
    val_set = data.validation[: config.eval_size] if config.eval_size else data.validation
    test_set = data.test[: config.eval_size] if config.eval_size else data.test

    model, tokenizer = build_model(config, data.num_labels)
    model.to(device)
    model.train()
    trainable, total = trainable_parameters(model)
    lr, head_lr = config.resolved_lr(), config.resolved_head_lr()
    optimizer = torch.optim.AdamW(parameter_groups(model, lr, head_lr), weight_decay=0.0)

    generator = torch.Generator().manual_seed(config.seed)
    sampler = None
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        sampler = torch.utils.data.distributed.DistributedSampler(
            train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed
        )
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    train_loader = _batches(train_set, tokenizer, config, sampler=sampler, shuffle=True, generator=generator)
    val_loader = _batches(val_set, tokenizer, config)
    test_loader = _batches(test_set, tokenizer, config)
    plain_model = model.module if distributed else model

    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    warmup = int(config.warmup_fraction * total_steps)

    def schedule(step):  # linear warm-up, then linear decay to zero
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    autocast, scaler, precision = _autocast(device)
    params = [p for p in model.parameters() if p.requires_grad]

    losses, step_times, history = [], [], []
    step = 0
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"{config.method}", disable=not (config.progress and main_process))
    with PeakMemory(device) as memory:
        for epoch in range(config.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            for batch in train_loader:
                if step >= total_steps:
                    break
                t0 = time.perf_counter()
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast():
                    loss = model(**batch).loss
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                scheduler.step()
                loss_value = loss.detach().float()
                if distributed:  # the curve shows the loss over the whole global batch
                    torch.distributed.all_reduce(loss_value)
                    loss_value /= world_size
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                step_times.append(time.perf_counter() - t0)
                losses.append(round(loss_value.item(), 5))
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            # Every process evaluates the whole validation split (identical numbers, no gathering needed).
            metrics = evaluate(plain_model, val_loader, device, autocast)
            history.append(
                {"epoch": epoch + 1, "step": step, "val_loss": metrics["loss"], "val_accuracy": metrics["accuracy"]}
            )
            if main_process and config.progress:
                bar.write(f"epoch {epoch + 1}: val loss {metrics['loss']:.4f}, val accuracy {metrics['accuracy']:.4f}")
            if step >= total_steps:
                break
    bar.close()
    wall = time.perf_counter() - start
    test_metrics = evaluate(plain_model, test_loader, device, autocast)

    checksums = [_checksum(plain_model)]
    if distributed:
        gathered = [None] * world_size
        torch.distributed.all_gather_object(gathered, checksums[0])
        checksums = gathered
    timed = step_times[1:] or step_times  # the first step pays for one-off set-up
    record = {
        "method": config.method,
        "model": config.model or "all-MiniLM-L6-v2",
        "dataset": data.name,
        "num_labels": data.num_labels,
        "block_size": config.block_size if config.method == "c3a" else None,
        "rank": config.rank if config.method == "lora" else None,
        "target_modules": list(config.target_modules) if config.method != "full" else None,
        "accuracy": test_metrics["accuracy"],
        "test_loss": test_metrics["loss"],
        "majority_baseline": majority_baseline(data.train, test_set),
        "eval": history,
        "loss_curve": losses,
        "trainable_params": trainable,
        "total_params": total,
        "peak_memory_mb": round(memory.peak_bytes / 2**20, 1),
        "peak_memory_kind": memory.kind,
        "time_per_step_s": round(sum(timed) / len(timed), 4),
        "steps": step,
        "wall_time_s": round(wall, 1),
        "lr": lr,
        "head_lr": head_lr,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "train_size": len(train_set),
        "eval_size": len(test_set),
        "device": str(device),
        "precision": precision,
        "world_size": world_size,
        "rank_checksums": checksums,
        "seed": config.seed,
        "machine": describe_machine(device, config.machine),
        "versions": versions(),
    }
    return FinetuneResult(record, plain_model, tokenizer, data)


# --------------------------------------------------------------------------------------------------
# Command line


def format_table(records: list[dict]) -> str:
    """One row per run: method, setting, accuracy, trainable parameters, peak memory, time per step."""
    head = f"{'method':<6} {'setting':>8} {'test acc':>9} {'trainable':>11} {'peak mem MB':>12} {'s/step':>8}"
    rows = [head, "-" * len(head)]
    for r in records:
        setting = f"b={r['block_size']}" if r["method"] == "c3a" else f"r={r['rank']}" if r["method"] == "lora" else "-"
        rows.append(
            f"{r['method']:<6} {setting:>8} {r['accuracy']:>9.3f} {r['trainable_params']:>11,d} "
            f"{r['peak_memory_mb']:>12.1f} {r['time_per_step_s']:>8.3f}"
        )
    return "\n".join(rows)


def _check_block_size_for_model(config: FinetuneConfig, model) -> None:
    """Turn a bad --block-size into one clear message naming the valid sizes of the target layers."""
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    targets = [(n, m) for n, m in targets if name_matches(n, config.target_modules)]
    common = None
    for _, m in targets:
        sizes = set(valid_block_sizes(m.in_features, m.out_features))
        common = sizes if common is None else common & sizes
    if targets and config.block_size not in common:
        shapes = sorted({(m.out_features, m.in_features) for _, m in targets})
        raise ValueError(
            f"--block-size {config.block_size} does not divide the target layers (out x in: {shapes}). "
            f"Valid block sizes: {sorted(common)}."
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.finetune",
        description="Fine-tune a pretrained encoder with C3A, LoRA or full fine-tuning; print and save a JSON record.",
    )
    p.add_argument("--method", choices=[*METHODS, "all"], default="c3a", help="'all' runs the three, one table")
    p.add_argument("--model", default=None, help="HF model id or local path (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--dataset", choices=DATASETS, default="stdlib", help="stdlib (offline, default) or sst2 (online)")
    p.add_argument("--block-size", type=int, default=24, help="C3A block size b; must divide the target layers")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank r")
    p.add_argument("--target-modules", nargs="+", default=list(DEFAULT_TARGET_MODULES))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--lr", type=float, default=None, help=f"adapter lr (all but the head for full); default {DEFAULT_LR}"
    )
    p.add_argument("--head-lr", type=float, default=None, help=f"classifier head lr (default {DEFAULT_HEAD_LR})")
    p.add_argument("--batch-size", type=int, default=16, help="per process")
    p.add_argument("--max-length", type=int, default=128, help="tokens per example (truncation)")
    p.add_argument("--train-size", type=int, default=None, help="use the first N training examples")
    p.add_argument("--eval-size", type=int, default=None, help="use the first N validation/test examples")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: CUDA → MPS → CPU)")
    p.add_argument("--machine", default=None, help="a label for the machine, stored in the record")
    p.add_argument("--output", default=None, help="write the JSON record here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> dict | list[dict]:
    """The command line. Returns the record (a list of them for ``--method all``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    methods = list(METHODS) if args.method == "all" else [args.method]
    config = FinetuneConfig(
        method=methods[0],
        model=args.model,
        dataset=args.dataset,
        block_size=args.block_size,
        rank=args.rank,
        target_modules=args.target_modules,
        epochs=args.epochs,
        lr=args.lr,
        head_lr=args.head_lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        train_size=args.train_size,
        eval_size=args.eval_size,
        max_steps=args.max_steps,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
        machine=args.machine,
    )
    try:
        validate_config(config)
        pick_device(config.device)
        if "c3a" in methods:  # fail before training, with the list of sizes that would work
            probe, _ = load_classifier(config.model, num_labels=2, seed=config.seed)
            _check_block_size_for_model(config, probe)
            del probe
        data = load_dataset(config.dataset, seed=config.seed)
    except (ValueError, ImportError, RuntimeError, FileNotFoundError) as err:
        parser.error(str(err))
    records = [finetune(replace(config, method=method), data=data).record for method in methods]
    if int(os.environ.get("RANK", "0")) == 0:
        if len(records) == 1:
            print(json.dumps({k: v for k, v in records[0].items() if k not in ("loss_curve", "eval")}, indent=1))
        print(
            f"\n{records[0]['dataset']}, {records[0]['train_size']} training examples, {config.epochs} epoch(s), "
            f"{records[0]['machine']}, device {records[0]['device']}"
        )
        print(format_table(records))
        baseline, kind = records[0]["majority_baseline"], records[0]["peak_memory_kind"]
        print(f"majority-class baseline: {baseline:.3f}; peak memory = {kind}")
        if args.output:
            os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
            with open(args.output, "w", encoding="utf-8") as f:
                json.dump(records[0] if len(records) == 1 else records, f, indent=1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.destroy_process_group()
    return records[0] if len(records) == 1 else records


__all__ = [
    "METHODS",
    "DEFAULT_LR",
    "DEFAULT_HEAD_LR",
    "FinetuneConfig",
    "FinetuneResult",
    "finetune",
    "build_model",
    "evaluate",
    "predict",
    "format_table",
    "main",
]

if __name__ == "__main__":
    main()
