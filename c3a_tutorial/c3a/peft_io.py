"""Carry adapters to and from Hugging Face PEFT (``peft.PeftModel``).

``export_to_peft(model, directory)`` writes ``adapter_config.json`` and ``adapter_model.safetensors``
the way ``model.save_pretrained`` of a ``PeftModel`` writes them, so that
``peft.PeftModel.from_pretrained(base_model, directory)`` rebuilds the same adapted model.
``import_from_peft(source, model)`` goes the other way. Neither function needs ``peft`` to read or
write files; only a ``PeftModel`` passed as ``source`` does.

The conventions differ, so C3A kernels are converted (checked numerically in
``tests/test_peft_compat.py``):

* Ours: block ``(i, j)`` of ``ΔW`` is ``scale · C(w[i, j])``, ``C`` = ``scipy.linalg.circulant``
  (kernel = first *column*), ``scale = 1 / d_in`` unless chosen otherwise.
* PEFT: block ``(i, j)`` is ``C(p[i, j])ᵀ / d_in`` (its kernel is the first *row*).

The identity between the two: a circulant's transpose is the circulant of the index-reversed kernel,
``C(c)ᵀ = C(rev(c))`` with ``rev(c)[k] = c[-k mod b]`` (entry ``(r, s)`` of ``C(c)ᵀ`` is
``c[(s - r) mod b] = rev(c)[(r - s) mod b]``). ``rev`` is its own inverse. So

    scale · C(w) = C(p)ᵀ / d_in = C(rev(p)) / d_in   ⇔   p = rev(w) · (scale · d_in)

LoRA needs no conversion: ``lora_A``/``lora_B`` have the same shapes and meaning in both, and PEFT's
scale ``lora_alpha / r`` is ours.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter

import torch
from torch import nn

from .inject import adapter_layers, add_adapters
from .layers import C3ALinear, LoRALinear

PREFIX = "base_model.model."  # what PEFT puts before every module name in a saved adapter
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"

# PEFT task types, guessed from the transformers class name when export_to_peft is not told.
_TASK_TYPES = {
    "ForSequenceClassification": "SEQ_CLS",
    "ForTokenClassification": "TOKEN_CLS",
    "ForCausalLM": "CAUSAL_LM",
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


def _guess_task_type(model: nn.Module) -> str | None:
    name = type(model).__name__
    return next((task for suffix, task in _TASK_TYPES.items() if name.endswith(suffix)), None)


def _modules_to_save(model: nn.Module, adapter_names: list[str]) -> dict[str, nn.Module]:
    """Modules holding trainable parameters outside the adapters (e.g. a classifier head), by name."""
    modules = {}
    for pname, param in model.named_parameters():
        if not param.requires_grad or any(pname.startswith(a + ".") for a in adapter_names):
            continue
        module_name = pname.rpartition(".")[0]
        if not module_name:
            raise ValueError(
                f"Trainable parameter {pname!r} sits on the model itself, not in a submodule: PEFT can only "
                "save whole submodules (modules_to_save). Freeze it or move it into a submodule."
            )
        modules[module_name] = model.get_submodule(module_name)
    # A module inside another saved module is saved with it.
    return {n: m for n, m in modules.items() if not any(n.startswith(o + ".") for o in modules)}


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


def export_to_peft(
    model: nn.Module,
    directory: str | os.PathLike,
    task_type: str | None = "auto",
    base_model_name_or_path: str | None = None,
) -> str:
    """Write ``model``'s adapters as a PEFT adapter directory; returns the directory.

    ``model`` has C3A or LoRA adapters (one method) from ``add_adapters``. Trainable modules outside the
    adapters (e.g. ``classifier``) become PEFT's ``modules_to_save``. ``task_type="auto"`` guesses it
    from the class name (``...ForSequenceClassification`` → ``"SEQ_CLS"``); ``None`` for none. Load it
    with ``peft.PeftModel.from_pretrained(base_model, directory)``, ``base_model`` being the same
    pretrained model *without* adapters.
    """
    from safetensors.torch import save_file

    layers = adapter_layers(model)
    if not layers:
        raise ValueError("The model has no adapters: call add_adapters first.")
    methods = sorted({layer.method for layer in layers.values()})
    if len(methods) > 1:
        raise ValueError(f"The model mixes {methods} adapters; a PEFT adapter directory holds one method.")
    method = methods[0]
    merged = [name for name, layer in layers.items() if layer.merged]
    if merged:
        raise ValueError(f"Adapters {merged} are merged: call unmerge_adapters(model) before exporting.")

    state = {}
    for name, layer in sorted(layers.items()):
        if isinstance(layer, C3ALinear):
            state[f"{PREFIX}{name}.c3a_kernel"] = to_peft_c3a_kernel(layer)
        elif isinstance(layer, LoRALinear):
            state[f"{PREFIX}{name}.lora_A.weight"] = layer.lora_A.detach().cpu().contiguous()
            state[f"{PREFIX}{name}.lora_B.weight"] = layer.lora_B.detach().cpu().contiguous()
        else:  # pragma: no cover - adapter_layers only finds these two
            raise TypeError(f"Cannot export a {type(layer).__name__}.")
    if task_type == "auto":
        task_type = _guess_task_type(model)
    extra = _modules_to_save(model, list(layers))
    for head in _TASK_HEADS.get(task_type, ()):
        for module_name, module in model.named_modules():
            if (module_name == head or module_name.endswith("." + head)) and module_name not in extra:
                extra[module_name] = module
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
    }
    if method == "c3a":
        sizes = {name: layer.block_size for name, layer in layers.items()}
        common = Counter(sizes.values()).most_common(1)[0][0]
        config.update(
            peft_type="C3A",
            block_size=common,
            block_size_pattern={_pattern_key(n): b for n, b in sorted(sizes.items()) if b != common},
            init_weights=True,  # zeros: the saved kernels overwrite them anyway
        )
    else:
        ranks = {name: layer.rank for name, layer in layers.items()}
        alphas = {name: layer.alpha for name, layer in layers.items()}
        dropouts = {layer.dropout_p for layer in layers.values()}
        if len(dropouts) > 1:
            raise ValueError(f"PEFT's LoRA has one dropout for all layers; the model's differ: {sorted(dropouts)}.")
        r = Counter(ranks.values()).most_common(1)[0][0]
        alpha = Counter(alphas.values()).most_common(1)[0][0]
        config.update(
            peft_type="LORA",
            r=r,
            lora_alpha=alpha,
            lora_dropout=dropouts.pop(),
            rank_pattern={n: v for n, v in sorted(ranks.items()) if v != r},
            alpha_pattern={n: v for n, v in sorted(alphas.items()) if v != alpha},
            fan_in_fan_out=False,
            init_lora_weights=True,
            use_rslora=False,
            use_dora=False,
        )
    try:
        import peft

        config["peft_version"] = peft.__version__
    except ImportError:
        pass

    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_NAME), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    save_file(state, os.path.join(directory, WEIGHTS_NAME), metadata={"format": "pt"})
    return directory


def _read_peft(source) -> tuple[dict, dict[str, torch.Tensor], nn.Module | None]:
    """``(config dict, state dict with PEFT's saved keys, base model or None)`` from a directory or PeftModel."""
    if isinstance(source, (str, os.PathLike)):
        directory = os.fspath(source)
        config_path = os.path.join(directory, CONFIG_NAME)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"No {CONFIG_NAME} in {directory!r}: is it a PEFT adapter directory?")
        with open(config_path) as f:
            config = json.load(f)
        weights = os.path.join(directory, WEIGHTS_NAME)
        if os.path.isfile(weights):
            from safetensors.torch import load_file

            state = load_file(weights)
        elif os.path.isfile(os.path.join(directory, "adapter_model.bin")):
            state = torch.load(os.path.join(directory, "adapter_model.bin"), map_location="cpu", weights_only=True)
        else:
            raise FileNotFoundError(f"No {WEIGHTS_NAME} (or adapter_model.bin) in {directory!r}.")
        return config, state, None
    try:
        from peft import PeftModel
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


def import_from_peft(source, model: nn.Module | None = None, trainable: bool = True) -> nn.Module:
    """Rebuild a PEFT C3A or LoRA adapter as ``c3a_tutorial`` adapters; returns the adapted model.

    Args:
        source: a PEFT adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``), or a
            ``peft.PeftModel`` with a C3A or LoRA adapter (its active adapter is taken).
        model: the base model *without* adapters to add them to (changed in place). Required for a
            directory; for a ``PeftModel``, ``None`` means a copy of its base model.
        trainable: whether the imported adapters and ``modules_to_save`` are left trainable.

    C3A layers get the default ``scale = 1 / d_in``, so the kernel is PEFT's, index-reversed.
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
    peft_type = str(config.get("peft_type", "")).upper().rsplit(".", 1)[-1]
    if peft_type not in ("C3A", "LORA"):
        raise ValueError(f"import_from_peft supports C3A and LoRA adapters; this one is {peft_type!r}.")
    if peft_type == "LORA" and (config.get("use_dora") or config.get("fan_in_fan_out")):
        raise ValueError("import_from_peft: DoRA and fan_in_fan_out LoRA adapters are not supported.")

    def strip(key: str) -> str:
        if not key.startswith(PREFIX):
            raise ValueError(f"Unexpected key {key!r} in the PEFT adapter: expected it to start with {PREFIX!r}.")
        return key[len(PREFIX) :]

    adapters, extra = {}, {}
    for key, tensor in state.items():
        key = strip(key)
        for suffix in (".c3a_kernel", ".lora_A.weight", ".lora_B.weight"):
            if key.endswith(suffix):
                adapters.setdefault(key[: -len(suffix)], {})[suffix] = tensor
                break
        else:
            extra[key] = tensor
    modules = dict(model.named_modules())
    params = model.state_dict(keep_vars=True)  # parameters and buffers (a saved module may have both)
    for name in adapters:
        if not isinstance(modules.get(name), nn.Linear):
            raise ValueError(f"The PEFT adapter adapts {name!r}, which is not an nn.Linear in this model.")
    for key, tensor in extra.items():
        if key not in params or params[key].shape != tensor.shape:
            raise ValueError(f"The PEFT adapter holds {key!r} {tuple(tensor.shape)}, which this model does not have.")

    for name, tensors in sorted(adapters.items()):
        if peft_type == "C3A":
            # p = rev(w) · (scale · d_in) with scale = 1 / d_in  ⇔  w = rev(p)
            kernel = tensors[".c3a_kernel"]
            add_adapters(model, "c3a", [name], block_size=kernel.shape[-1])
            layer = model.get_submodule(name)
            with torch.no_grad():
                layer.kernel.copy_(reverse_kernel(kernel).to(layer.kernel.dtype))
        else:
            lora_a, lora_b = tensors[".lora_A.weight"], tensors[".lora_B.weight"]
            rank = lora_a.shape[0]
            alpha = _lookup(config.get("alpha_pattern") or {}, name, config.get("lora_alpha", 8))
            if config.get("use_rslora"):
                alpha = alpha * rank**0.5  # rsLoRA scales by alpha / sqrt(r); ours by alpha / r
            dropout = float(config.get("lora_dropout") or 0.0)
            add_adapters(model, "lora", [name], rank=rank, alpha=alpha, dropout=dropout)
            layer = model.get_submodule(name)
            with torch.no_grad():
                layer.lora_A.copy_(lora_a.to(layer.lora_A.dtype))
                layer.lora_B.copy_(lora_b.to(layer.lora_B.dtype))
    # add_adapters froze the rest of the model; open what the adapter trains.
    for layer in adapter_layers(model).values():
        for pname, param in layer.named_parameters():
            if not pname.startswith("base_layer."):
                param.requires_grad_(trainable)
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, tensor in extra.items():
            params[key].copy_(tensor.to(params[key].dtype))
            if isinstance(params[key], nn.Parameter):
                params[key].requires_grad_(trainable)
    return model


def _lookup(pattern: dict, name: str, default):
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default
