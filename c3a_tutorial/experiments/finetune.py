"""The command line for fine-tuning: one run, or every method in one table; the loop itself is in ``train``.

    python -m c3a_tutorial.finetune --method c3a --block-size 24 --epochs 3 --save-adapter runs/c3a.safetensors
    python -m c3a_tutorial.finetune --method all --train-size 256 --epochs 2 --max-length 32
    torchrun --nproc_per_node 2 -m c3a_tutorial.finetune --method lora --rank 8   # DDP, several processes

Every field of ``FinetuneConfig`` is a flag (``block_size`` → ``--block-size``, ``progress`` →
``--no-progress``) whose default is the field's own, so the defaults live in one place; ``--help``
shows them. Besides the record (``--output``), a run can keep its trained adapter:

* ``--save-adapter PATH``: ``save_adapter`` (``*.safetensors`` or a torch file); reload it into the same
  pretrained model with ``load_adapter(load_classifier(model, num_labels)[0], PATH)``.
* ``--export-peft DIR``: ``export_to_peft``, a directory ``peft.PeftModel.from_pretrained`` loads.

Every output path is checked before the first step (a directory where a file belongs, a parent that is a
file, a folder that cannot be written; missing folders are created), and one that exists is replaced only
with ``--force``. At the end each output is written on its own: one that fails (a full disk) does not
stop the others, and the command then exits with status 1, naming what was not written.

Both need one adapter method: ``--method full`` trains every weight, so there is no adapter to save,
and the command line says so before training (save a full model from Python with
``finetune(...).model.save_pretrained(directory)``). With ``--method all`` there are several adapters;
run the methods one at a time to keep them.

This module also re-exports the training API: ``FinetuneConfig`` and the defaults from ``config``,
``finetune``, ``evaluate``, ``predict``, ``format_table`` … from ``train``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import types
import typing
from dataclasses import MISSING, fields, replace

import torch

from ..c3a.adapter_file import save_adapter
from ..c3a.inject import name_matches
from ..c3a.layers import base_features, is_supported_base
from ..c3a.methods import get_method
from ..c3a.paths import output_problem
from ..c3a.peft_io import export_to_peft
from .backbone import DEFAULT_MODEL, load_classifier
from .config import (
    COMPILE_BACKENDS,
    DEFAULT_HEAD_LR,
    DEFAULT_LR,
    DEFAULT_TARGET_MODULES,
    FULL,
    METHODS,
    FinetuneConfig,
    validate_config,
)
from .data import DATASETS, load_dataset
from .device import pick_device
from .record import format_table, setting_label
from .train import (
    MAX_GRAD_NORM,
    FinetuneResult,
    NonFiniteLossError,
    build_model,
    compile_problem,
    evaluate,
    finetune,
    parameter_groups,
    predict,
)

ALL = "all"  # --method all: every method, one table
# One line of help per FinetuneConfig field; build_parser appends each field's default.
FIELD_HELP = {
    "method": f"'{ALL}' runs {', '.join(METHODS)} and prints one table",
    "model": "Hugging Face model id or local directory",
    "dataset": "stdlib (offline) or sst2 (online, needs `datasets`)",
    "block_size": "C3A block size b; must divide the target layers",
    "rank": "LoRA rank r",
    "lora_alpha": "LoRA's alpha: ΔW = (alpha / r)·B·A, fixed across ranks as in PEFT",
    "n_frequency": "FourierFT's trained coefficients per layer (PEFT's baselines, through the sweep)",
    "target_modules": "the linear modules to adapt (name suffixes; nn.Linear or GPT-2's Conv1D, e.g. c_attn)",
    "epochs": "passes over the training examples",
    "lr": "adapter learning rate (every weight but the head for full)",
    "head_lr": "learning rate of the new classification head",
    "batch_size": "examples per step, per process",
    "max_length": "tokens per example (longer ones are truncated)",
    "train_size": "use the first N training examples",
    "eval_size": "use the first N validation and test examples",
    "max_steps": "stop after N optimizer steps",
    "warmup_fraction": "fraction of the steps with a linear learning-rate warm-up",
    "seed": "seeds the head, the adapters, the data order and dropout",
    "device": "cpu, cuda, cuda:1 or mps",
    "progress": "hide the progress bars",
    "machine": "a label for the machine, stored in the record",
    "compile": "torch.compile the training step's forward (its backward follows); the same losses, maybe faster "
    "where the host's launches bound the step",
    "compile_backend": "torch.compile's backend for --compile: inductor (on the CPU it needs a C++ compiler; "
    "without one the run says so and uses aot_eager) or aot_eager (traces, no new kernels)",
    "cuda_graphs": "replay each training step's forward and backward from CUDA graphs (torch.compile's "
    "reduce-overhead mode; batches padded to --max-length, the last short one dropped); needs a CUDA GPU",
}
# What a default means, for --help, where the value itself would not say (None, a switch).
DEFAULT_MEANS = {
    "model": f"the bundled {DEFAULT_MODEL}",
    "lr": f"per method, { {m: DEFAULT_LR[m] for m in METHODS} }",
    "head_lr": str(DEFAULT_HEAD_LR),
    "train_size": "all",
    "eval_size": "all",
    "max_steps": "no limit",
    "device": "CUDA, else MPS, else CPU",
    "machine": "none",
    "progress": "bars shown",
    "compile": "off, eager",
    "cuda_graphs": "off",
}


# (flag's dest, what the path must be, what is written there): every output, checked before training.
OUTPUTS = (("output", "file", "the JSON record"), ("save_adapter", "file", "the adapter"),
           ("export_peft", "directory", "the PEFT adapter"))  # fmt: skip
OPTIMIZER_HELP = (
    "Optimizer: AdamW (betas 0.9, 0.999; weight decay 0) in two parameter groups: the adapters (every weight "
    "but the head, for full) at --lr with eps 1e-8 times the adapter's ΔW scale (C3A's 1/d_in, LoRA's "
    "alpha/r; 1e-8 for full fine-tuning), and the new "
    "classification head at --head-lr with eps 1e-8. Gradients are clipped to norm "
    f"{MAX_GRAD_NORM:g} before each step. The learning rate rises linearly over the first --warmup-fraction of "
    "the steps, then falls linearly to zero at the last step. With eps scaled so, C3A's scale s at lr η trains "
    "exactly like scale 1 at lr s·η (c3a_tutorial.adapter_parameter_groups builds such groups)."
)


def finite_float(text: str) -> float:
    """argparse's ``float``, refusing ``nan`` and ``inf``: a learning rate of inf trains nothing, silently."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _value_type(annotation) -> type:
    """``int`` for ``int | None``, ``str`` for ``list[str]``: what argparse converts each value to."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list) and len(args) == 1:
        annotation = args[0]
    return finite_float if annotation is float else annotation


def _add_config_flag(parser: argparse.ArgumentParser, name: str, annotation, default) -> None:
    flag = "--" + name.replace("_", "-")
    shown = " ".join(default) if isinstance(default, list) else default
    shown = DEFAULT_MEANS.get(name, shown)
    text = f"{FIELD_HELP[name]} (default: {shown})"
    if annotation is bool:  # a switch away from the default: --no-progress turns progress off
        switch = "--no-" + name.replace("_", "-") if default else flag
        parser.add_argument(switch, dest=name, action="store_false" if default else "store_true", help=text)
        return
    kwargs = {"default": default, "type": _value_type(annotation), "help": text}
    if typing.get_origin(annotation) is list:
        kwargs["nargs"] = "+"
    if name == "method":
        kwargs["choices"] = [*METHODS, ALL]
    elif name == "dataset":
        kwargs["choices"] = list(DATASETS)
    elif name == "compile_backend":
        kwargs["choices"] = list(COMPILE_BACKENDS)
    parser.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """Every ``FinetuneConfig`` field as a flag with the field's default, plus where to write results."""
    parser = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.finetune",
        description="Fine-tune a pretrained encoder with C3A, LoRA or full fine-tuning; print and save a JSON record.",
        epilog=OPTIMIZER_HELP,
    )
    hints = typing.get_type_hints(FinetuneConfig)
    for f in fields(FinetuneConfig):
        default = f.default_factory() if f.default is MISSING else f.default
        _add_config_flag(parser, f.name, hints[f.name], default)
    parser.add_argument("--output", default=None, help="write the JSON record here (default: not written)")
    parser.add_argument(
        "--save-adapter",
        default=None,
        metavar="PATH",
        help="save the trained adapter and head here with save_adapter, *.safetensors or a torch file; "
        "needs one adapter method, not full or all (default: not saved)",
    )
    parser.add_argument(
        "--export-peft",
        default=None,
        metavar="DIR",
        help="export the trained adapter and head as a PEFT adapter directory; "
        "needs one adapter method, not full or all (default: not exported)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --output, --save-adapter or --export-peft (default: refuse, before training)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[FinetuneConfig, list[str]]:
    """The run's config (the first method's, for ``--method all``) and the methods to run."""
    values = {f.name: getattr(args, f.name) for f in fields(FinetuneConfig)}
    methods = list(METHODS) if values["method"] == ALL else [values["method"]]
    return FinetuneConfig(**{**values, "method": methods[0]}), methods


def _as_flag(message: str, argument: str, value) -> str:
    """``"block_size=7 does not …"`` → ``"--block-size 7 does not …"``: speak the command line's language."""
    keyword, flag = f"{argument}={value}", f"--{argument.replace('_', '-')} {value}"
    return flag + message[len(keyword) :] if message.startswith(keyword) else f"{flag}: {message}"


def _size_error(method: str, shape: tuple[int, int], size: int, layer: str = "the layer") -> ValueError | None:
    """The error ``method``'s layer class raises for ``size`` on an ``out x in`` layer, or ``None`` if it fits.

    The layer is built on the meta device, so nothing is allocated.
    """
    argument = get_method(method).size_argument
    try:
        get_method(method).layer_class(
            torch.nn.Linear(shape[1], shape[0], device="meta"), **{argument: size}, name=layer
        )
    except ValueError as err:
        return err
    return None


def check_sizes_fit(config: FinetuneConfig, methods: list[str], model: torch.nn.Module) -> None:
    """Fail before training when an adapter size does not fit a target layer, naming the sizes that would.

    Each method's layer class judges its own size (C3A's block size must divide the layer).
    """
    linears = [(n, m) for n, m in model.named_modules() if is_supported_base(m)]  # nn.Linear, GPT-2's Conv1D
    targets = {
        n: tuple(reversed(base_features(m))) for n, m in linears if name_matches(n, config.target_modules)
    }  # (out, in)
    if not targets and any(m != FULL for m in methods):
        endings = sorted({n.rpartition(".")[2] for n, _ in linears})
        raise ValueError(
            f"--target-modules {' '.join(config.target_modules)} matches no linear layer of the model (nn.Linear or "
            "GPT-2's Conv1D): an entry "
            f"matches a layer whose name ends with it, and these names end with {endings}."
        )
    shapes = sorted(set(targets.values()))
    for method in methods:
        if method == FULL:
            continue
        ((argument, size),) = replace(config, method=method).adapter_size().items()
        for layer, shape in targets.items():
            err = _size_error(method, shape, size, layer)
            if err is None:
                continue
            message = _as_flag(str(err), argument, size)
            if len(shapes) > 1:
                largest = min(map(min, shapes))
                valid = [v for v in range(1, largest + 1) if not any(_size_error(method, s, v) for s in shapes)]
                message += f" Values that fit every target layer (out x in: {shapes}): {valid}."
            raise ValueError(message) from err


def output_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with ``--output``, ``--save-adapter`` and ``--export-peft``, in the command line's words.

    A path of the wrong kind, under a file or in a folder that cannot be written; one that exists, unless
    ``--force`` (an empty directory for ``--export-peft`` is fine); two outputs on one path.
    """
    found, seen = [], {}
    for dest, kind, _ in OUTPUTS:
        path = getattr(args, dest)
        if not path:
            continue
        flag = "--" + dest.replace("_", "-")
        real = os.path.realpath(path)
        if real in seen:
            found.append(f"{flag} {path} is also {seen[real]}'s path: give each output its own path.")
            continue
        seen[real] = flag
        problem = output_problem(path, kind, create_parents=True)
        empty_directory = kind == "directory" and os.path.isdir(path) and not os.listdir(path)
        if problem:
            found.append(f"{flag} {path}: {problem}.")
        elif os.path.lexists(path) and not empty_directory and not args.force:
            found.append(f"{flag} {path} already exists: pass --force to replace it, or choose another path.")
    return found


def _check_before_training(parser, args, config: FinetuneConfig, methods: list[str]):
    """Everything that can be wrong with the arguments, found before the first step; returns the data set."""
    problems = output_problems(args)
    if problems:
        parser.error(" ".join(problems))
    if (args.save_adapter or args.export_peft) and (len(methods) > 1 or methods[0] == FULL):
        parser.error(
            "--save-adapter and --export-peft keep one run's adapter: choose one adapter method "
            f"({', '.join(m for m in METHODS if m != FULL)}). --method full trains every weight and has no "
            "adapter; save that model from Python with finetune(...).model.save_pretrained(directory)."
        )
    try:
        validate_config(config)
        problem = compile_problem(config, pick_device(config.device), int(os.environ.get("WORLD_SIZE", "1")))
        if problem:  # before the model loads: one line, no traceback
            parser.error(problem)
        if any(m != FULL for m in methods):  # fail before training, with the sizes that would work
            probe, _ = load_classifier(config.model, num_labels=2, seed=config.seed)
            check_sizes_fit(config, methods, probe)
            del probe
        return load_dataset(config.dataset, seed=config.seed)
    except (ValueError, ImportError, RuntimeError, FileNotFoundError) as err:
        parser.error(str(err))


def _write(flag: str, path: str, write, what: str, failures: list[str]) -> bool:
    """``write(path)``, creating missing folders; a failure is added to ``failures`` instead of raised."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write(path)
        return True
    except (OSError, ValueError, RuntimeError) as err:  # a full disk, a folder removed meanwhile, ...
        failures.append(f"{flag} {path}: {what} was not written ({type(err).__name__}: {err})")
        return False


def keep_adapter(result: FinetuneResult, args: argparse.Namespace) -> list[str]:
    """``--save-adapter`` and ``--export-peft``: write the trained adapter where they say; returns the failures."""
    failures: list[str] = []
    path = args.save_adapter
    if path and _write("--save-adapter", path, lambda p: save_adapter(result.model, p), "the adapter", failures):
        print(f"adapter saved to {path} (load_adapter reloads it)")
    path = args.export_peft
    if path and _write("--export-peft", path, lambda p: export_to_peft(result.model, p), "the PEFT adapter", failures):
        print(f"PEFT adapter exported to {path} (peft.PeftModel.from_pretrained loads it)")
    return failures


def _write_json(path: str, value) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"  # next to it, then moved into place: never a half-written record
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def report(records: list[dict], output: str | None) -> list[str]:
    """Print the record (one run) and the table; write the JSON to ``output``; returns the failures."""
    first = records[0]
    if len(records) == 1:
        print(json.dumps({k: v for k, v in first.items() if k not in ("loss_curve", "eval")}, indent=1))
    print(
        f"\n{first['dataset']}, {first['train_size']} training examples, {first['epochs']} epoch(s), "
        f"{first['machine']}, device {first['device']}"
    )
    print(format_table(records))
    print(f"majority-class baseline: {first['majority_baseline']:.3f}; peak memory = {first['peak_memory_kind']}")
    failures: list[str] = []
    if output:
        value = first if len(records) == 1 else records
        if _write("--output", output, lambda path: _write_json(path, value), "the JSON record", failures):
            print(f"record written to {output}")
    return failures


def main(argv: list[str] | None = None) -> dict | list[dict]:
    """The command line. Returns the record (a list of them for ``--method all``).

    Exits with status 2 on a usage error (nothing trained, nothing written) and 1 when an output could not
    be written at the end (the others are written; each failure is named).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    config, methods = config_from_args(args)
    data = _check_before_training(parser, args, config, methods)
    main_process = int(os.environ.get("RANK", "0")) == 0
    records, failures = [], []
    for method in methods:
        try:
            result = finetune(replace(config, method=method), data=data)
        except NonFiniteLossError as err:
            print(f"error: {err} Nothing of this run was written.", file=sys.stderr)
            raise SystemExit(1) from err
        if main_process:
            failures += keep_adapter(result, args)
        records.append(result.record)
    if main_process:
        failures += report(records, args.output)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.destroy_process_group()
    if failures:
        print("\n".join(f"error: {failure}" for failure in failures), file=sys.stderr)
        raise SystemExit(1)
    return records[0] if len(records) == 1 else records


__all__ = [
    "METHODS",
    "DEFAULT_LR",
    "DEFAULT_HEAD_LR",
    "DEFAULT_TARGET_MODULES",
    "FinetuneConfig",
    "FinetuneResult",
    "finetune",
    "build_model",
    "parameter_groups",
    "validate_config",
    "evaluate",
    "predict",
    "format_table",
    "setting_label",
    "build_parser",
    "main",
]

if __name__ == "__main__":
    main()
