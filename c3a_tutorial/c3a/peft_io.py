"""Carry adapters to and from Hugging Face PEFT (``peft.PeftModel``).

``export_to_peft(model, directory)`` writes ``adapter_config.json`` and ``adapter_model.safetensors``
the way ``model.save_pretrained`` of a ``PeftModel`` writes them, so that
``peft.PeftModel.from_pretrained(base_model, directory)`` rebuilds the same adapted model.
``import_from_peft(source, model)`` goes the other way. Neither function needs ``peft`` to read or
write files; only a ``PeftModel`` passed as ``source`` does.

Each registered method (``methods.METHODS``) has one entry in ``PEFT_FORMATS`` below: its saved keys,
its config entries and the conversion of its weights. The conventions differ for C3A, so its kernels
are converted (checked numerically in ``tests/c3a/test_peft_io.py``):

* Ours: block ``(i, j)`` of ``ΔW`` is ``scale · C(w[i, j])``, ``C`` = ``scipy.linalg.circulant``
  (kernel = first *column*), ``scale = 1 / d_in`` unless chosen otherwise.
* PEFT: block ``(i, j)`` is ``C(p[i, j])ᵀ / d_in`` (its kernel is the first *row*).

The identity between the two: a circulant's transpose is the circulant of the index-reversed kernel,
``C(c)ᵀ = C(rev(c))`` with ``rev(c)[k] = c[-k mod b]`` (entry ``(r, s)`` of ``C(c)ᵀ`` is
``c[(s - r) mod b] = rev(c)[(r - s) mod b]``). ``rev`` is its own inverse. So

    scale · C(w) = C(p)ᵀ / d_in = C(rev(p)) / d_in   ⇔   p = rev(w) · (scale · d_in)

LoRA needs no conversion: ``lora_A``/``lora_B`` have the same shapes and meaning in both, and PEFT's
scale ``lora_alpha / r`` is ours. On GPT-2's ``Conv1D`` layers PEFT's LoRA sets ``fan_in_fan_out``;
PEFT's C3A accepts only ``nn.Linear``, so a C3A adapter on ``Conv1D`` cannot be exported.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .inject import adapter_layers, add_adapters, record_trainable, trainable_outside_adapters
from .layers import AdapterLinear, C3ALinear, LoRALinear, is_conv1d, is_supported_base
from .methods import get_method, method_for_peft_type

PREFIX = "base_model.model."  # what PEFT puts before every module name in a saved adapter
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"

# PEFT task types, guessed from the transformers class name when export_to_peft is not told.
_TASK_TYPES = {
    "ForSequenceClassification": "SEQ_CLS",
    "ForTokenClassification": "TOKEN_CLS",
    "ForCausalLM": "CAUSAL_LM",
    "LMHeadModel": "CAUSAL_LM",
    "ForQuestionAnswering": "QUESTION_ANS",
    "ForConditionalGeneration": "SEQ_2_SEQ_LM",
}
# Heads PEFT adds to modules_to_save by itself for these task types: their weights must be in the file.
_TASK_HEADS = {
    "SEQ_CLS": ("classifier", "score"),
    "TOKEN_CLS": ("classifier", "score"),
    "QUESTION_ANS": ("qa_outputs",),
}


def reverse_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """``rev(c)[k] = c[-k mod b]`` along the last axis: ``C(rev(c)) == C(c)ᵀ``. Its own inverse."""
    return torch.roll(torch.flip(kernel, dims=[-1]), shifts=1, dims=-1)


def to_peft_c3a_kernel(layer: C3ALinear) -> torch.Tensor:
    """Our ``C3ALinear`` kernel as PEFT's ``c3a_kernel`` (float32): ``rev(w) · scale · d_in``."""
    factor = layer.scale * layer.in_features  # 1.0 for the default scale, 1 / d_in
    kernel = reverse_kernel(layer.kernel.detach())
    if factor != 1.0:
        kernel = kernel * factor
    return kernel.to(torch.float32).cpu().contiguous()


def _pattern_key(name: str) -> str:
    # PEFT's C3A looks a per-layer block size up with re.match(rf".*\.{key}$", full_name): the key must
    # be preceded by a dot, so we give it the name without its first component, escaped.
    head, dot, rest = name.partition(".")
    if not dot:
        raise ValueError(
            f"Layer {name!r} has a different block size from the other layers and a top-level name; PEFT "
            "cannot address it with block_size_pattern. Use one block size for all layers to export."
        )
    return re.escape(rest)


def _lookup(pattern: dict, name: str, default):
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def _c3a_to_peft(name: str, layer: C3ALinear) -> dict[str, torch.Tensor]:
    if layer.fan_in_fan_out:
        raise ValueError(
            f"Cannot export the C3A adapter on {name!r}: it wraps a transformers Conv1D (GPT-2), and PEFT's C3A "
            "accepts only nn.Linear layers, so PEFT could not load it. Keep it in this package's format "
            "(save_adapter / load_adapter, merge_and_unload), or train LoRA on these layers to use PEFT."
        )
    return {".c3a_kernel": to_peft_c3a_kernel(layer)}


def _c3a_config(layers: dict[str, C3ALinear]) -> dict:
    sizes = {name: layer.block_size for name, layer in layers.items()}
    common = Counter(sizes.values()).most_common(1)[0][0]
    return {
        "block_size": common,
        "block_size_pattern": {_pattern_key(n): b for n, b in sorted(sizes.items()) if b != common},
        "init_weights": True,  # zeros: the saved kernels overwrite them anyway
    }


def _c3a_check_import(name: str, module: nn.Module, config: dict) -> None:
    if is_conv1d(module):
        raise ValueError(f"The PEFT C3A adapter adapts {name!r}, a Conv1D; PEFT's C3A only adapts nn.Linear.")


def _c3a_from_peft(model: nn.Module, name: str, tensors: dict[str, torch.Tensor], config: dict) -> None:
    # p = rev(w) · (scale · d_in) with scale = 1 / d_in  ⇔  w = rev(p)
    kernel = tensors[".c3a_kernel"]
    add_adapters(model, "c3a", re.escape(name), block_size=kernel.shape[-1])
    layer = model.get_submodule(name)
    with torch.no_grad():
        layer.kernel.copy_(reverse_kernel(kernel).to(layer.kernel.dtype))


def _lora_to_peft(name: str, layer: LoRALinear) -> dict[str, torch.Tensor]:
    return {
        ".lora_A.weight": layer.lora_A.detach().cpu().contiguous(),
        ".lora_B.weight": layer.lora_B.detach().cpu().contiguous(),
    }


def _lora_config(layers: dict[str, LoRALinear]) -> dict:
    dropouts = {layer.dropout_p for layer in layers.values()}
    if len(dropouts) > 1:
        raise ValueError(f"PEFT's LoRA has one dropout for all layers; the model's differ: {sorted(dropouts)}.")
    orientations = {layer.fan_in_fan_out for layer in layers.values()}
    if len(orientations) > 1:
        conv = sorted(n for n, layer in layers.items() if layer.fan_in_fan_out)
        raise ValueError(
            "PEFT's LoRA has one fan_in_fan_out setting for all layers, but the model's LoRA adapters wrap both "
            f"nn.Linear and Conv1D layers (Conv1D: {conv}). Adapt only one kind to export."
        )
    ranks = {name: layer.rank for name, layer in layers.items()}
    alphas = {name: layer.alpha for name, layer in layers.items()}
    r, alpha = Counter(ranks.values()).most_common(1)[0][0], Counter(alphas.values()).most_common(1)[0][0]
    return {
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": dropouts.pop(),
        "rank_pattern": {n: v for n, v in sorted(ranks.items()) if v != r},
        "alpha_pattern": {n: v for n, v in sorted(alphas.items()) if v != alpha},
        "fan_in_fan_out": orientations.pop(),  # True on GPT-2's Conv1D, whose weight is stored in x out
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
    }


def _lora_check_import(name: str, module: nn.Module, config: dict) -> None:
    if config.get("use_dora"):
        raise ValueError("import_from_peft: DoRA adapters are not supported, only plain LoRA.")
    if config.get("fan_in_fan_out") and not is_conv1d(module):
        raise ValueError(
            f"The PEFT LoRA adapter has fan_in_fan_out=True but {name!r} is an nn.Linear in this model: "
            "fan_in_fan_out belongs to Conv1D layers (GPT-2). Is this the model the adapter was trained on?"
        )


def _lora_from_peft(model: nn.Module, name: str, tensors: dict[str, torch.Tensor], config: dict) -> None:
    lora_a, lora_b = tensors[".lora_A.weight"], tensors[".lora_B.weight"]
    rank = lora_a.shape[0]
    alpha = _lookup(config.get("alpha_pattern") or {}, name, config.get("lora_alpha", 8))
    if config.get("use_rslora"):
        alpha = alpha * rank**0.5  # rsLoRA scales by alpha / sqrt(r); ours by alpha / r
    dropout = float(config.get("lora_dropout") or 0.0)
    add_adapters(model, "lora", re.escape(name), rank=rank, alpha=alpha, dropout=dropout)
    layer = model.get_submodule(name)
    with torch.no_grad():
        layer.lora_A.copy_(lora_a.to(layer.lora_A.dtype))
        layer.lora_B.copy_(lora_b.to(layer.lora_B.dtype))


@dataclass(frozen=True)
class PeftFormat:
    """How one registered method is written in a PEFT adapter directory, and read back."""

    suffixes: tuple[str, ...]  # saved keys of one layer: PREFIX + module name + suffix
    to_peft: Callable[[str, AdapterLinear], dict[str, torch.Tensor]]  # (name, layer) -> {suffix: tensor}
    config: Callable[[dict[str, AdapterLinear]], dict]  # the method's entries of adapter_config.json
    check_import: Callable[[str, nn.Module, dict], None]  # (name, base module, config): raise if unsupported
    from_peft: Callable[[nn.Module, str, dict[str, torch.Tensor], dict], None]  # add one adapter, load it


PEFT_FORMATS: dict[str, PeftFormat] = {  # keyed by the registry's method names
    "c3a": PeftFormat((".c3a_kernel",), _c3a_to_peft, _c3a_config, _c3a_check_import, _c3a_from_peft),
    "lora": PeftFormat(
        (".lora_A.weight", ".lora_B.weight"), _lora_to_peft, _lora_config, _lora_check_import, _lora_from_peft
    ),
}


def _exportable_method(layers: dict[str, AdapterLinear]) -> str:
    """The one method of the model's adapters; an error if none, several, or merged."""
    if not layers:
        raise ValueError("The model has no adapters: call add_adapters first.")
    methods = sorted({layer.method for layer in layers.values()})
    if len(methods) > 1:
        raise ValueError(f"The model mixes {methods} adapters; a PEFT adapter directory holds one method.")
    merged = [name for name, layer in layers.items() if layer.merged]
    if merged:
        raise ValueError(f"Adapters {merged} are merged: call unmerge_adapters(model) before exporting.")
    return methods[0]


def _guess_task_type(model: nn.Module) -> str | None:
    name = type(model).__name__
    return next((task for suffix, task in _TASK_TYPES.items() if name.endswith(suffix)), None)


def _modules_to_save(model: nn.Module, task_type: str | None) -> dict[str, nn.Module]:
    """Modules holding trained parameters outside the adapters (e.g. a classifier head), by name."""
    modules = {}
    layers = adapter_layers(model)
    for pname in trainable_outside_adapters(model):
        if any(pname.startswith(a + ".") for a in layers):
            continue  # inside an adapter's frozen base layer: PEFT has no place for it
        module_name = pname.rpartition(".")[0]
        if not module_name:
            raise ValueError(
                f"Trainable parameter {pname!r} sits on the model itself, not in a submodule: PEFT can only "
                "save whole submodules (modules_to_save). Freeze it or move it into a submodule."
            )
        modules[module_name] = model.get_submodule(module_name)
    for head in _TASK_HEADS.get(task_type, ()):  # PEFT opens these by itself, so their weights must be there
        for module_name, module in model.named_modules():
            if module_name == head or module_name.endswith("." + head):
                modules.setdefault(module_name, module)
    # A module inside another saved module is saved with it.
    return {n: m for n, m in modules.items() if not any(n.startswith(o + ".") for o in modules)}


def _write_peft_directory(directory: str, config: dict, state: dict[str, torch.Tensor]) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_NAME), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    save_file(state, os.path.join(directory, WEIGHTS_NAME), metadata={"format": "pt"})


def export_to_peft(
    model: nn.Module,
    directory: str | os.PathLike,
    task_type: str | None = "auto",
    base_model_name_or_path: str | None = None,
) -> str:
    """Write ``model``'s adapters as a PEFT adapter directory; returns the directory.

    ``model`` has C3A or LoRA adapters (one method) from ``add_adapters``. The modules it made trainable
    outside the adapters (e.g. ``classifier``) become PEFT's ``modules_to_save``. ``task_type="auto"``
    guesses it from the class name (``...ForSequenceClassification`` → ``"SEQ_CLS"``); ``None`` for none.
    Load it with ``peft.PeftModel.from_pretrained(base_model, directory)``, ``base_model`` being the
    same pretrained model *without* adapters. LoRA on GPT-2's ``Conv1D`` exports with
    ``fan_in_fan_out=True``; C3A on ``Conv1D`` cannot be exported (PEFT's C3A takes only ``nn.Linear``).
    """
    layers = adapter_layers(model)
    method = _exportable_method(layers)
    formats = PEFT_FORMATS[method]
    state = {}
    for name, layer in sorted(layers.items()):
        state.update({f"{PREFIX}{name}{suffix}": t for suffix, t in formats.to_peft(name, layer).items()})
    if task_type == "auto":
        task_type = _guess_task_type(model)
    extra = _modules_to_save(model, task_type)
    for module_name, module in extra.items():
        for pname, param in module.state_dict().items():
            state[f"{PREFIX}{module_name}.{pname}"] = param.detach().cpu().contiguous()
    if base_model_name_or_path is None:
        base_model_name_or_path = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    config = {
        "base_model_name_or_path": base_model_name_or_path,
        "bias": "none",
        "inference_mode": True,
        "modules_to_save": sorted(extra) or None,
        "revision": None,
        "target_modules": sorted(layers),  # full names: PEFT matches a name equal to an entry
        "task_type": task_type,
        "peft_type": get_method(method).peft_type,
        **formats.config(layers),
    }
    with contextlib.suppress(ImportError):
        import peft  # optional: only to record its version, as PEFT itself does

        config["peft_version"] = peft.__version__
    directory = os.fspath(directory)
    _write_peft_directory(directory, config, state)
    return directory


def _read_peft_directory(directory: str) -> tuple[dict, dict[str, torch.Tensor]]:
    config_path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"No {CONFIG_NAME} in {directory!r}: is it a PEFT adapter directory?")
    with open(config_path) as f:
        config = json.load(f)
    weights = os.path.join(directory, WEIGHTS_NAME)
    if os.path.isfile(weights):
        return config, load_file(weights)
    legacy = os.path.join(directory, "adapter_model.bin")
    if os.path.isfile(legacy):
        return config, torch.load(legacy, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"No {WEIGHTS_NAME} (or adapter_model.bin) in {directory!r}.")


def _read_peft(source) -> tuple[dict, dict[str, torch.Tensor], nn.Module | None]:
    """``(config dict, state dict with PEFT's saved keys, base model or None)`` from a directory or PeftModel."""
    if isinstance(source, (str, os.PathLike)):
        return (*_read_peft_directory(os.fspath(source)), None)
    try:
        from peft import PeftModel  # optional: only a live PeftModel needs it
        from peft.utils import get_peft_model_state_dict
    except ImportError as err:
        raise TypeError("import_from_peft: source must be a PEFT adapter directory or a peft.PeftModel.") from err
    if not isinstance(source, PeftModel):
        raise TypeError(
            "import_from_peft: source must be a PEFT adapter directory or a peft.PeftModel, "
            f"got {type(source).__name__}."
        )
    adapter = source.active_adapter
    config = source.peft_config[adapter].to_dict()
    state = get_peft_model_state_dict(source, adapter_name=adapter)
    # A copy without PEFT's layers (not merged): the base model to put our adapters into.
    base = copy.deepcopy(source).unload()
    return config, state, base


def _split_state(state: dict[str, torch.Tensor], suffixes: tuple[str, ...]) -> tuple[dict, dict]:
    """``({module name: {suffix: tensor}}, {other key: tensor})`` with PEFT's prefix removed."""
    adapters, extra = {}, {}
    for key, tensor in state.items():
        if not key.startswith(PREFIX):
            raise ValueError(f"Unexpected key {key!r} in the PEFT adapter: expected it to start with {PREFIX!r}.")
        key = key[len(PREFIX) :]
        suffix = next((s for s in suffixes if key.endswith(s)), None)
        if suffix is None:
            extra[key] = tensor
        else:
            adapters.setdefault(key[: -len(suffix)], {})[suffix] = tensor
    return adapters, extra


def _check_import(model: nn.Module, adapters: dict, extra: dict, config: dict, formats: PeftFormat) -> None:
    modules = dict(model.named_modules())
    for name in adapters:
        if not is_supported_base(modules.get(name)):
            raise ValueError(f"The PEFT adapter adapts {name!r}, which is not a linear layer in this model.")
        formats.check_import(name, modules[name], config)
    params = model.state_dict(keep_vars=True)  # parameters and buffers (a saved module may have both)
    for key, tensor in extra.items():
        if key not in params or params[key].shape != tensor.shape:
            raise ValueError(f"The PEFT adapter holds {key!r} {tuple(tensor.shape)}, which this model does not have.")


def import_from_peft(source, model: nn.Module | None = None, trainable: bool = True) -> nn.Module:
    """Rebuild a PEFT C3A or LoRA adapter as ``c3a_tutorial`` adapters; returns the adapted model.

    Args:
        source: a PEFT adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``), or a
            ``peft.PeftModel`` with a C3A or LoRA adapter (its active adapter is taken).
        model: the base model *without* adapters to add them to (changed in place). Required for a
            directory; for a ``PeftModel``, ``None`` means a copy of its base model.
        trainable: whether the imported adapters and ``modules_to_save`` are left trainable.

    C3A layers get the default ``scale = 1 / d_in``, so the kernel is PEFT's, index-reversed. Everything
    is checked before the model changes.
    """
    config, state, base = _read_peft(source)
    if model is None:
        if base is None:
            raise ValueError(
                "import_from_peft(directory) needs the base model: import_from_peft(directory, model=base_model), "
                "with base_model the pretrained model the adapter was trained on, without adapters."
            )
        model = base
    if adapter_layers(model):
        raise ValueError("The model already has adapters: pass the base model without adapters.")
    formats = PEFT_FORMATS[method_for_peft_type(config.get("peft_type", "")).name]
    adapters, extra = _split_state(state, formats.suffixes)
    _check_import(model, adapters, extra, config, formats)

    for name, tensors in sorted(adapters.items()):
        formats.from_peft(model, name, tensors, config)
    for layer in adapter_layers(model).values():  # add_adapters froze the rest; set what the adapter trains
        for param in (p for n, p in layer.named_parameters() if not n.startswith("base_layer.")):
            param.requires_grad_(trainable)
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, tensor in extra.items():
            params[key].copy_(tensor.to(params[key].dtype))
            if isinstance(params[key], nn.Parameter):
                params[key].requires_grad_(trainable)
    record_trainable(model, [key for key in extra if isinstance(params[key], nn.Parameter)])
    return model
