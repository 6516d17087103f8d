"""One fine-tuning run: a ``FinetuneConfig`` (``experiments.config``) in, a trained model and a
JSON-able record (``experiments.record``) out.

A run has four parts, one function each:

* **set-up** (``set_up``): the data splits, the model (``build_model``: adapters from the method
  registry, or every weight trainable for ``"full"``), AdamW with two learning rates, a linear
  warm-up/decay schedule, the loaders, DDP under ``torchrun``, and the precision;
* **step** (``train_step``): one optimizer step; ``train`` runs the steps, epoch by epoch;
* **evaluate** (``evaluate``): loss and accuracy on the validation split after every epoch, on the
  test split at the end;
* **record** (``record.make_record``): method, accuracy, loss curve, trainable parameters, peak
  memory, time per step, device, seed and versions.

Two learning rates: ``lr`` for the adapter (every parameter but the head for ``"full"``) and
``head_lr`` for the freshly initialised classifier. C3A needs a far larger adapter lr than LoRA
because its ``ΔW`` is scaled by ``1/d_in`` (see ``C3ALinear``); ``DEFAULT_LR`` holds what our lr
sweep chose (``data/results/lr_sweep.json``). AdamW's ε of this package's adapters is multiplied by
their ``ΔW`` scale ``s``: the gradients of a kernel scale with ``s``, so Adam's step ``m/(√v + ε)`` is
then the same for every ``s``, and "scale ``s`` at lr ``η`` trains like scale 1 at lr ``s·η``" holds
exactly, not only up to ε (at C3A's default ``s = 1/d_in`` its gradients are ~1e-7, near Adam's 1e-8).

Devices: CUDA → MPS → CPU (``pick_device``), ``device`` to override. On CUDA the forward runs under
autocast (bf16 where supported, else fp16 with a gradient scaler); the C3A FFTs stay in float32.
Under ``torchrun`` every process trains on its share of each batch through DDP; only rank 0 shows
progress. Nothing here touches CUDA at import time.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..c3a.inject import adapter_layers, adapter_parameter_groups, trainable_parameters
from .backbone import load_classifier
from .config import ADAM_EPS, MAX_GRAD_NORM, WEIGHT_DECAY, FinetuneConfig, validate_config
from .data import TextDataset, load_dataset
from .device import pick_device
from .measure import PeakMemory
from .methods import get_experiment_method, head_names, is_head_parameter
from .record import TrainingLog, make_record

# --------------------------------------------------------------------------------------------------
# The model


def build_model(config: FinetuneConfig, num_labels: int):
    """``(model, tokenizer)``: the pretrained encoder with a fresh head, built as ``config.method``'s
    declaration says (``experiments.methods``): this package's adapters, PEFT's, or every weight trainable."""
    model, tokenizer = load_classifier(config.model, num_labels=num_labels, seed=config.seed)
    model = get_experiment_method(config.method).build(model, config)
    return model, tokenizer


def parameter_groups(model: torch.nn.Module, lr: float, head_lr: float, eps: float = ADAM_EPS) -> list[dict]:
    """AdamW groups. With this package's adapters: ``adapter_parameter_groups`` (each adapter scale its own group,
    ε multiplied by the scale, so that the scale × lr rule is exact; the head at ``head_lr``). Otherwise (full
    fine-tuning, PEFT's methods): the head at ``head_lr``, every other trainable parameter at ``lr``, ε as given."""
    if adapter_layers(model):
        return adapter_parameter_groups(model, lr, head_lr, eps)
    head, body, heads = [], [], head_names(model)
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head if is_head_parameter(name, heads) else body).append(param)
    groups = [{"params": body, "lr": lr, "eps": eps}, {"params": head, "lr": head_lr, "eps": eps}]
    return [g for g in groups if g["params"]]


# --------------------------------------------------------------------------------------------------
# Where it runs: processes (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK) and precision


def distributed_setup(device: str | None):
    """``(rank, world_size, device)``; starts the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, pick_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return dist.get_rank(), world_size, chosen


def mixed_precision(device: torch.device):
    """``(autocast, scaler, precision)``: bf16 autocast where supported, fp16 + GradScaler on older GPUs,
    else nothing (float32)."""
    if device.type != "cuda":
        return contextlib.nullcontext, None, "float32"
    if torch.cuda.is_bf16_supported():
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None, "bf16 autocast"
    scaler = torch.amp.GradScaler("cuda")
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), scaler, "fp16 autocast + GradScaler"


# --------------------------------------------------------------------------------------------------
# Set-up


def batches(examples, tokenizer, config: FinetuneConfig, sampler=None, shuffle=False, generator=None, static=False):
    """A ``DataLoader`` of tokenized ``(text, label)`` examples, padded per batch.

    ``static``: every batch has one shape, ``batch_size × max_length`` (padded to ``max_length``, the last short
    batch dropped), as a CUDA graph replays only the shapes it captured."""

    def collate(batch):
        texts, labels = zip(*batch, strict=True)
        encoded = tokenizer(
            list(texts),
            padding="max_length" if static else True,
            truncation=True,
            max_length=config.max_length,
            return_tensors="pt",
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
        drop_last=static,
    )


# --------------------------------------------------------------------------------------------------
# Compiled steps (--compile, --cuda-graphs): off by default


def cpp_compiler() -> str | None:
    """The C++ compiler Inductor would use for CPU kernels ($CXX, else g++, c++, clang++ on the PATH), or None."""
    named = os.environ.get("CXX")
    if named:
        return shutil.which(named)
    return next((found for name in ("g++", "c++", "clang++") if (found := shutil.which(name))), None)


def compile_problem(config: FinetuneConfig, device: torch.device, world_size: int = 1) -> str | None:
    """Why ``config``'s compile options cannot run on ``device``, in the command line's words; None if they can."""
    if not config.cuda_graphs:
        return None
    if device.type != "cuda":
        return (
            f"--cuda-graphs needs a CUDA GPU (this run is on {device.type}): run without it, or use --compile "
            "(torch.compile without CUDA graphs), which works on the CPU."
        )
    if world_size > 1:
        return "--cuda-graphs runs one process: under torchrun use --compile, or run one process."
    return None


def compile_model(model: torch.nn.Module, config: FinetuneConfig, device: torch.device):
    """``(model to train, what was compiled)``: ``model`` itself when neither option is on, else ``torch.compile``
    of it, which shares its parameters (the optimizer, evaluation and saving keep using ``model``).

    Only the forward is compiled; AOTAutograd builds its backward. The optimizer step, the gradient clipping and
    the schedule stay eager, outside any graph, with --cuda-graphs too: the schedule changes the learning rate every
    step (a graph would keep the first one unless it were a tensor), and clipping and the fp16 scaler decide on the
    host. Those are a few dozen launches per step; the forward and backward of the adapted encoder are most of them.
    Inductor cannot generate code for complex tensors (C3A's FFT path): those ops run as eager kernels inside
    the compiled graph, and a graph break is a slower step, never a wrong one. On the CPU Inductor needs a C++
    compiler; without one the run falls back to aot_eager and says so on stderr."""
    if not (config.compile or config.cuda_graphs):
        return model, None
    backend, mode = config.compile_backend, None
    if config.cuda_graphs:
        # CUDA graph trees: warm-up steps run eagerly, then the forward and backward graphs are captured and
        # replayed; static shapes (set_up's static batches) and dynamic=False keep it to one graph per part.
        mode = "reduce-overhead"
    elif backend == "inductor" and device.type == "cpu" and cpp_compiler() is None:
        print(
            "--compile: no C++ compiler found ($CXX, g++, c++, clang++), which Inductor needs on the CPU; "
            "compiling with backend aot_eager instead (traced and checked, no faster).",
            file=sys.stderr,
        )
        backend = "aot_eager"
    compiled = torch.compile(model, backend=backend, mode=mode, dynamic=False if config.cuda_graphs else None)
    return compiled, {"backend": backend, "mode": mode or "default", "cuda_graphs": config.cuda_graphs}


def warmup_then_decay(optimizer, total_steps: int, warmup_fraction: float):
    """Linear warm-up over ``warmup_fraction`` of the steps, then linear decay to zero."""
    warmup = int(warmup_fraction * total_steps)

    def factor(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Run:
    """What ``set_up`` builds and the step, the loop and the record use."""

    config: FinetuneConfig
    data: TextDataset
    train_set: list
    test_set: list
    rank: int
    world_size: int
    device: torch.device
    model: torch.nn.Module  # what trains: the DDP wrapper under torchrun
    plain_model: torch.nn.Module  # the model itself
    compiled: dict | None  # what --compile / --cuda-graphs compiled (backend, mode), None when neither is on
    tokenizer: object
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    autocast: Callable
    scaler: torch.amp.GradScaler | None
    precision: str
    sampler: torch.utils.data.Sampler | None
    loaders: dict[str, torch.utils.data.DataLoader]  # "train", "validation", "test"
    total_steps: int
    trainable: int
    total: int


def set_up(config: FinetuneConfig, data: TextDataset | None = None) -> Run:
    """Processes, seed, data, model, optimizer, schedule, loaders and precision, in this order.

    The order is part of the result: it fixes what the seeded random generators produce.
    """
    rank, world_size, device = distributed_setup(config.device)
    problem = compile_problem(config, device, world_size)
    if problem:
        raise ValueError(problem)
    torch.manual_seed(config.seed)
    data = load_dataset(config.dataset, seed=config.seed) if data is None else data
    train_set = data.train[: config.train_size] if config.train_size else data.train
    val_set = data.validation[: config.eval_size] if config.eval_size else data.validation
    test_set = data.test[: config.eval_size] if config.eval_size else data.test

    model, tokenizer = build_model(config, data.num_labels)
    model.to(device)
    model.train()
    trainable, total = trainable_parameters(model)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.resolved_lr(), config.resolved_head_lr()), weight_decay=WEIGHT_DECAY
    )
    generator = torch.Generator().manual_seed(config.seed)
    plain_model, sampler = model, None
    if world_size > 1:
        sampler = torch.utils.data.distributed.DistributedSampler(
            train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed
        )
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.cuda_graphs and len(train_set) < config.batch_size:
        raise ValueError(
            f"--cuda-graphs trains on full batches only and the {len(train_set)} training examples make none of "
            f"--batch-size {config.batch_size}: lower --batch-size or raise --train-size."
        )
    model, compiled = compile_model(model, config, device)
    loaders = {
        "train": batches(train_set, tokenizer, config, sampler, True, generator, static=config.cuda_graphs),
        "validation": batches(val_set, tokenizer, config),
        "test": batches(test_set, tokenizer, config),
    }
    total_steps = len(loaders["train"]) * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = warmup_then_decay(optimizer, total_steps, config.warmup_fraction)
    autocast, scaler, precision = mixed_precision(device)
    return Run(
        config, data, train_set, test_set, rank, world_size, device, model, plain_model, compiled, tokenizer, optimizer,
        scheduler, autocast, scaler, precision, sampler, loaders, total_steps, trainable, total,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Step and evaluation


def train_step(run: Run, batch: dict) -> float:
    """One optimizer step on ``batch``; returns its loss, averaged over the processes under DDP."""
    batch = {k: v.to(run.device) for k, v in batch.items()}
    # Before the forward: under --cuda-graphs the last step's gradients live in the graphs' memory, which this
    # step's replay reuses, so they are let go first (for the eager loop the order changes nothing).
    run.optimizer.zero_grad(set_to_none=True)
    if run.config.cuda_graphs:  # a new iteration: the graphs may reuse the last step's output memory
        torch.compiler.cudagraph_mark_step_begin()
    with run.autocast():
        loss = run.model(**batch).loss
    params = [p for p in run.model.parameters() if p.requires_grad]
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        run.optimizer.step()
    run.scheduler.step()
    loss_value = loss.detach().float()
    if run.world_size > 1:  # the curve shows the loss over the whole global batch
        dist.all_reduce(loss_value)
        loss_value /= run.world_size
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    return loss_value.item()


@torch.no_grad()
def evaluate(model, loader, device, autocast=contextlib.nullcontext, progress: bool = False) -> dict[str, float]:
    """Mean loss and accuracy over ``loader``, and ``correct``: one character per example in the loader's order,
    ``"1"`` where the prediction is right (a paired test of two runs on the same examples reads it). ``progress``
    shows a bar that goes away when done."""
    was_training = model.training
    model.eval()
    total_loss, correct, count, hits = 0.0, 0, 0, []
    # A bar by count, not tqdm(loader): tqdm.auto opens an extra iterator over the loader, and each one draws
    # a seed from torch's global generator, which would change the dropout of every later training step.
    bar = tqdm(total=len(loader), desc="evaluate", leave=False, disable=not progress)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            out = model(**batch)
        total_loss += out.loss.float().item() * len(batch["labels"])
        right = (out.logits.argmax(-1) == batch["labels"]).cpu()
        correct += int(right.sum().item())
        hits += ["1" if r else "0" for r in right.tolist()]
        count += len(batch["labels"])
        bar.update(1)
    bar.close()
    model.train(was_training)
    return {"loss": total_loss / count, "accuracy": correct / count, "correct": "".join(hits)}


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


# --------------------------------------------------------------------------------------------------
# The loop


class NonFiniteLossError(ValueError):
    """The training loss became nan or inf: training stopped at that step (every later step would be noise)."""


def _check_finite(loss: float, step: int, config: FinetuneConfig) -> None:
    if math.isfinite(loss):
        return
    raise NonFiniteLossError(
        f"The training loss is {loss} at step {step} of the {config.method} run (lr {config.resolved_lr():g}, "
        f"head_lr {config.resolved_head_lr():g}): training stopped there. A learning rate this large diverges; "
        f"this method's default lr is {get_experiment_method(config.method).default_lr:g} (--lr, --head-lr)."
    )


def train(run: Run, stop_on_nonfinite_loss: bool = True) -> TrainingLog:
    """Train for ``config.epochs`` epochs (or ``max_steps`` steps), evaluating after each epoch.

    A nan or inf training loss raises ``NonFiniteLossError`` at that step, naming the learning rates, unless
    ``stop_on_nonfinite_loss=False`` (the sweep: a diverged run is a result of its learning-rate search)."""
    log, show = TrainingLog(), run.config.progress and run.rank == 0
    start = time.perf_counter()
    bar = tqdm(total=run.total_steps, desc=run.config.method, disable=not show)
    with PeakMemory(run.device) as memory:
        for epoch in range(run.config.epochs):
            if run.sampler is not None:
                run.sampler.set_epoch(epoch)
            for batch in run.loaders["train"]:
                if log.steps >= run.total_steps:
                    break
                t0 = time.perf_counter()
                loss = train_step(run, batch)
                if stop_on_nonfinite_loss:  # the same on every process: the loss is all-reduced
                    _check_finite(loss, log.steps + 1, run.config)
                log.step_times.append(time.perf_counter() - t0)
                log.losses.append(round(loss, 5))
                bar.update(1)
                bar.set_postfix(loss=f"{log.losses[-1]:.3f}")
            # Every process evaluates the whole validation split (identical numbers, no gathering needed).
            metrics = evaluate(run.plain_model, run.loaders["validation"], run.device, run.autocast, show)
            log.history.append(
                {
                    "epoch": epoch + 1,
                    "step": log.steps,
                    "val_loss": metrics["loss"],
                    "val_accuracy": metrics["accuracy"],
                }
            )
            if show:
                bar.write(f"epoch {epoch + 1}: val loss {metrics['loss']:.4f}, val accuracy {metrics['accuracy']:.4f}")
            if log.steps >= run.total_steps:
                break
    bar.close()
    log.wall_s = time.perf_counter() - start
    log.peak_memory_bytes, log.peak_memory_kind = memory.peak_bytes, memory.kind
    return log


# --------------------------------------------------------------------------------------------------
# Processes in sync


def _checksum(model) -> float:
    return float(sum(p.detach().double().sum().item() for p in model.parameters() if p.requires_grad))


def rank_checksums(run: Run) -> list[float]:
    """The sum of each process's trainable parameters: equal sums mean DDP kept the replicas identical."""
    checksums = [_checksum(run.plain_model)]
    if run.world_size > 1:
        gathered = [None] * run.world_size
        dist.all_gather_object(gathered, checksums[0])
        checksums = gathered
    return checksums


# --------------------------------------------------------------------------------------------------
# One run


@dataclass
class FinetuneResult:
    """What ``finetune`` returns: the JSON record, the trained model and what it was trained with."""

    record: dict
    model: torch.nn.Module
    tokenizer: object
    data: TextDataset


def finetune(
    config: FinetuneConfig | None = None,
    data: TextDataset | None = None,
    stop_on_nonfinite_loss: bool = True,
    **overrides,
) -> FinetuneResult:
    """Run one fine-tuning as ``config`` says, with ``overrides`` replacing its fields (or the defaults').

    ``data`` is the ``TextDataset`` to use (default: ``load_dataset(config.dataset)``). Under ``torchrun``
    every rank returns the same record. A nan or inf training loss stops the run with ``NonFiniteLossError``
    (naming the learning rates), unless ``stop_on_nonfinite_loss=False``.
    """
    config = FinetuneConfig(**overrides) if config is None else replace(config, **overrides)
    validate_config(config)
    run = set_up(config, data)
    log = train(run, stop_on_nonfinite_loss)
    show = config.progress and run.rank == 0
    test_metrics = evaluate(run.plain_model, run.loaders["test"], run.device, run.autocast, show)
    record = make_record(run, log, test_metrics, rank_checksums(run))
    return FinetuneResult(record, run.plain_model, run.tokenizer, run.data)
