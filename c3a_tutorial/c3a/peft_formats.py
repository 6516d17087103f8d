"""How each adapter method is written in a PEFT adapter directory and read back: ``PEFT_FORMATS``.

Each registered method (``methods.METHODS``) has one ``PeftFormat``: its saved keys, its config entries and
the conversion of its weights (``peft_io`` uses them). The conventions differ for C3A, so its kernels are
converted (checked numerically in ``tests/c3a/test_peft_io.py``):

* Ours: block ``(i, j)`` of ``ΔW`` is ``scale · C(w[i, j])``, ``C`` = ``scipy.linalg.circulant``
  (kernel = first *column*), ``scale = 1 / d_in`` unless chosen otherwise.
* PEFT: block ``(i, j)`` is ``C(p[i, j])ᵀ / d_in`` (its kernel is the first *row*); it has no scale.

The identity between the two: a circulant's transpose is the circulant of the index-reversed kernel,
``C(c)ᵀ = C(rev(c))`` with ``rev(c)[k] = c[-k mod b]`` (entry ``(r, s)`` of ``C(c)ᵀ`` is
``c[(s - r) mod b] = rev(c)[(r - s) mod b]``). ``rev`` is its own inverse. So

    scale · C(w) = C(p)ᵀ / d_in = C(rev(p)) / d_in   ⇔   p = rev(w) · (scale · d_in)

PEFT computes the same ``ΔW`` from ``p`` whatever our scale was, but the scale itself is lost in PEFT's
config. ``peft_io`` keeps it in the weights file's metadata (which PEFT ignores), and on the way back
``w = rev(p) / (scale · d_in)`` with the scale found there: the same kernel, the same scale, so training
resumed at the same learning rate moves ``ΔW`` as before.

LoRA needs no conversion: ``lora_A``/``lora_B`` have the same shapes and meaning in both, and PEFT's
scale ``lora_alpha / r`` is ours. On GPT-2's ``Conv1D`` layers PEFT's LoRA sets ``fan_in_fan_out``;
PEFT's C3A accepts only ``nn.Linear``, so a C3A adapter on ``Conv1D`` cannot be exported.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .inject import add_adapters
from .layers import AdapterLinear, C3ALinear, LoRALinear, is_conv1d


def reverse_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """``rev(c)[k] = c[-k mod b]`` along the last axis: ``C(rev(c)) == C(c)ᵀ``. Its own inverse."""
    return torch.roll(torch.flip(kernel, dims=[-1]), shifts=1, dims=-1)


def to_peft_c3a_kernel(layer: C3ALinear) -> torch.Tensor:
    """Our ``C3ALinear`` kernel as PEFT's ``c3a_kernel`` (float32): ``rev(w) · scale · d_in``."""
    factor = layer.scale * layer.in_features  # 1.0 for the default scale, 1 / d_in
    kernel = reverse_kernel(layer.kernel.detach())
    if factor != 1.0:
        kernel = kernel.double() * factor  # one rounding, to float32 below
    return kernel.to(torch.float32).cpu().contiguous()


def from_peft_c3a_kernel(peft_kernel: torch.Tensor, layer: C3ALinear) -> torch.Tensor:
    """PEFT's ``c3a_kernel`` as the kernel of ``layer`` (whose scale is set): ``rev(p) / (scale · d_in)``."""
    factor = layer.scale * layer.in_features
    kernel = reverse_kernel(peft_kernel)
    if factor != 1.0:
        kernel = kernel.double() / factor
    return kernel.to(layer.kernel.dtype)


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


def _c3a_from_peft(model: nn.Module, name: str, tensors: dict[str, torch.Tensor], config: dict, kept: dict) -> None:
    # p = rev(w) · (scale · d_in)  ⇔  w = rev(p) / (scale · d_in); without a kept scale, PEFT's own 1 / d_in
    kernel = tensors[".c3a_kernel"]
    add_adapters(model, "c3a", re.escape(name), [], block_size=kernel.shape[-1], scale=kept.get("scale"))
    layer = model.get_submodule(name)
    with torch.no_grad():
        layer.kernel.copy_(from_peft_c3a_kernel(kernel, layer))


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


def _lora_from_peft(model: nn.Module, name: str, tensors: dict[str, torch.Tensor], config: dict, kept: dict) -> None:
    lora_a, lora_b = tensors[".lora_A.weight"], tensors[".lora_B.weight"]
    rank = lora_a.shape[0]
    alpha = _lookup(config.get("alpha_pattern") or {}, name, config.get("lora_alpha", 8))
    if config.get("use_rslora"):
        alpha = alpha * rank**0.5  # rsLoRA scales by alpha / sqrt(r); ours by alpha / r
    dropout = float(config.get("lora_dropout") or 0.0)
    add_adapters(model, "lora", re.escape(name), [], rank=rank, alpha=alpha, dropout=dropout)
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
    # (model, name, {suffix: tensor}, config, kept settings): add one adapter and load it
    from_peft: Callable[[nn.Module, str, dict[str, torch.Tensor], dict, dict], None]
    kept: tuple[str, ...] = ()  # layer settings PEFT's config has no place for, kept in the weights' metadata


PEFT_FORMATS: dict[str, PeftFormat] = {  # keyed by the registry's method names
    "c3a": PeftFormat((".c3a_kernel",), _c3a_to_peft, _c3a_config, _c3a_check_import, _c3a_from_peft, ("scale",)),
    "lora": PeftFormat(
        (".lora_A.weight", ".lora_B.weight"), _lora_to_peft, _lora_config, _lora_check_import, _lora_from_peft
    ),
}
