"""Model-level helpers: wrap the chosen ``nn.Linear`` layers, count, merge, save and load.

Names are matched as in Hugging Face PEFT: a module is a target when its full name equals an entry of
``target_modules`` or ends with ``"." + entry`` (so ``"query"`` matches
``"encoder.layer.0.attention.self.query"``). A single string is a regular expression that must match
the whole name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

from .layers import AdapterLinear
from .methods import get_method


def name_matches(name: str, targets: str | Iterable[str]) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def adapter_layers(model: nn.Module) -> dict[str, AdapterLinear]:
    """Every adapter layer in ``model``, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, AdapterLinear)}


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def add_adapters(
    model: nn.Module,
    method: str = "c3a",
    target_modules: str | Iterable[str] = ("query", "value"),
    trainable_modules: str | Iterable[str] = (),
    **layer_kwargs,
) -> nn.Module:
    """Wrap the ``nn.Linear`` modules named by ``target_modules`` with adapters, in place.

    Every other parameter is frozen, except those inside ``trainable_modules`` (matched the same way;
    e.g. ``["classifier"]`` for a freshly initialised classification head). ``layer_kwargs`` go to the
    adapter: ``block_size``, ``scale``, ``init_weights`` for ``"c3a"``; ``rank``, ``alpha``,
    ``dropout`` for ``"lora"``. Returns ``model``.
    """
    cls = get_method(method).layer_class
    if not isinstance(target_modules, str):
        target_modules = list(target_modules)
        if not target_modules:
            raise ValueError("target_modules is empty: name the nn.Linear modules to adapt, e.g. ['query', 'value'].")
    existing = adapter_layers(model)
    targets = [(n, m) for n, m in model.named_modules() if n and name_matches(n, target_modules)]
    # Modules inside an existing adapter (its base_layer) are not new targets.
    targets = [(n, m) for n, m in targets if not any(n.startswith(e + ".") for e in existing)]
    if not targets:
        raise ValueError(
            f"target_modules={target_modules!r} matches no module. The model's nn.Linear modules are: "
            f"{_linear_names(model)}"
        )
    for name, module in targets:
        if isinstance(module, AdapterLinear):
            raise ValueError(
                f"Module {name!r} already has a {module.method} adapter. add_adapters wraps a model once: "
                "start again from a fresh base model, or use load_adapter to replace the adapter's weights."
            )
        if not isinstance(module, nn.Linear):
            raise TypeError(
                f"target_modules={target_modules!r} matches {name!r}, which is a {type(module).__name__}, "
                "not an nn.Linear. Name the linear layers inside it instead, e.g. "
                f"{[n for n in _linear_names(model) if n.startswith(name + '.')][:4]}."
            )
    # Check and build everything before changing anything, so a bad argument leaves the model as it was.
    trainable = []
    if trainable_modules:
        trainable = [m for n, m in model.named_modules() if n and name_matches(n, trainable_modules)]
        if not trainable:
            raise ValueError(f"trainable_modules={trainable_modules!r} matches no module.")
    wrapped = {name: cls(module, name=name, **layer_kwargs) for name, module in targets}
    if not existing:
        # First call: freeze the base model. A later call (more adapters on the same model) keeps what
        # earlier calls made trainable; the new adapters freeze their own base layers.
        model.requires_grad_(False)
    for name, adapter in wrapped.items():
        _set_submodule(model, name, adapter)
    for m in trainable:
        m.requires_grad_(True)
    return model


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``model``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def format_trainable_parameters(model: nn.Module) -> str:
    """``"trainable params: N || all params: M || trainable%: P"``, as PEFT prints it."""
    trainable, total = trainable_parameters(model)
    percent = 100.0 * trainable / total if total else 0.0
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {percent:.4f}"


def print_trainable_parameters(model: nn.Module) -> None:
    print(format_trainable_parameters(model))


def merge_adapters(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base weight."""
    for layer in adapter_layers(model).values():
        layer.merge()
    return model


def unmerge_adapters(model: nn.Module) -> nn.Module:
    """Undo ``merge_adapters``."""
    for layer in adapter_layers(model).values():
        layer.unmerge()
    return model
