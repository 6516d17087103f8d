"""Saving and loading adapters: one file holds the adapter weights, every other parameter
``add_adapters`` made trainable (e.g. a classification head), keyed by their names in the model, and
metadata that says how to rebuild the adapters: method, per-layer settings and shapes.

``*.safetensors`` paths are written with safetensors (metadata in its header), anything else with
``torch.save``.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .inject import adapter_layers, add_adapters
from .methods import get_method

FORMAT_NAME = "c3a_tutorial.adapter"
FORMAT_VERSION = 1


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights and every other trainable parameter, keyed by parameter name."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("The model has no adapters: call add_adapters first.")
    state = {}
    for name, param in model.named_parameters():
        in_adapter = any(name.startswith(n + ".") and not name.startswith(n + ".base_layer.") for n in layers)
        if in_adapter or param.requires_grad:
            state[name] = param.detach().clone().contiguous()
    return state


def adapter_metadata(model: nn.Module) -> dict:
    """What ``load_adapter`` needs to rebuild and check the adapters."""
    layers = adapter_layers(model)
    methods = sorted({layer.method for layer in layers.values()})
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "method": methods[0] if len(methods) == 1 else methods,
        "target_modules": sorted(layers),
        "layers": {
            name: {**layer.adapter_config(), "in_features": layer.in_features, "out_features": layer.out_features}
            for name, layer in sorted(layers.items())
        },
    }


def save_adapter(model: nn.Module, path: str | os.PathLike) -> None:
    """Save ``adapter_state_dict(model)`` and its metadata: safetensors for ``*.safetensors``, else torch."""
    for name, layer in adapter_layers(model).items():
        if layer.merged:
            raise ValueError(f"Adapter {name!r} is merged: call unmerge_adapters(model) before saving.")
    state = adapter_state_dict(model)
    metadata = adapter_metadata(model)
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        save_file({k: v.cpu() for k, v in state.items()}, path, metadata={"c3a_tutorial": json.dumps(metadata)})
    else:
        torch.save({"metadata": metadata, "state_dict": {k: v.cpu() for k, v in state.items()}}, path)


def _read_adapter_file(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"No adapter file at {path!r}.")
    try:
        if path.endswith(".safetensors"):
            with safe_open(path, framework="pt") as f:
                metadata = json.loads((f.metadata() or {})["c3a_tutorial"])
                state = {k: f.get_tensor(k) for k in f.keys()}
        else:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            metadata, state = blob["metadata"], blob["state_dict"]
    except Exception as err:  # noqa: BLE001 - any failure here means the same thing to the user
        raise ValueError(
            f"Could not read the adapter file {path!r}: it is truncated, corrupted or not written by "
            f"save_adapter ({type(err).__name__}: {err}). The model was not changed."
        ) from err
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!r} is not an adapter file written by c3a_tutorial.save_adapter.")
    return metadata, state


def load_adapter(model: nn.Module, path: str | os.PathLike, trainable: bool = True) -> nn.Module:
    """Load an adapter saved by ``save_adapter`` into ``model``; returns ``model``.

    If ``model`` has no adapters yet, they are added first, as the file describes (so a fresh base
    model is enough). If it has, they must match the file. Everything is checked before anything is
    changed: on any error the model is left as it was.
    """
    metadata, state = _read_adapter_file(os.fspath(path))
    layers = adapter_layers(model)
    modules = dict(model.named_modules())
    for name, cfg in metadata["layers"].items():
        shape = (cfg["out_features"], cfg["in_features"])
        if name in layers:
            layer = layers[name]
            if layer.method != cfg["method"]:
                raise ValueError(f"Module {name!r} has a {layer.method} adapter but the file holds {cfg['method']}.")
            if layer.merged:
                raise ValueError(f"Adapter {name!r} is merged: call unmerge_adapters(model) before loading.")
            have = (layer.out_features, layer.in_features)
            for key, value in layer.adapter_config().items():
                if key in cfg and cfg[key] != value:
                    raise ValueError(
                        f"Module {name!r}: the model's adapter has {key}={value!r} but the file has "
                        f"{key}={cfg[key]!r}. Load into a fresh base model, or add adapters with the same settings."
                    )
        elif name in modules and isinstance(modules[name], nn.Linear):
            if layers:
                raise ValueError(f"The file has an adapter for {name!r} but the model's adapters do not include it.")
            have = (modules[name].out_features, modules[name].in_features)
        else:
            raise ValueError(f"The file has an adapter for {name!r}, which is not an nn.Linear in this model.")
        if have != shape:
            raise ValueError(
                f"Module {name!r} is {have[0]}x{have[1]} (out x in) in this model but {shape[0]}x{shape[1]} "
                "in the adapter file: it was trained for a different model."
            )
    if layers and set(layers) != set(metadata["layers"]):
        missing = sorted(set(layers) - set(metadata["layers"]))
        raise ValueError(f"The model has adapters the file does not: {missing}.")

    # Check every tensor's name and shape against what the model will hold, still without changing it.
    if layers:
        target = dict(model.named_parameters())
    else:
        preview = {}
        for name, cfg in metadata["layers"].items():
            cls = get_method(cfg["method"]).layer_class
            kwargs = {k: v for k, v in cfg.items() if k not in ("method", "in_features", "out_features")}
            probe = cls(nn.Linear(cfg["in_features"], cfg["out_features"], device="meta"), **kwargs)
            preview.update({f"{name}.{k}": p for k, p in probe.named_parameters()})
        target = {**dict(model.named_parameters()), **preview}
    for key, tensor in state.items():
        if key not in target:
            raise ValueError(f"The adapter file holds {key!r}, which this model does not have.")
        if tuple(target[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{key!r} has shape {tuple(tensor.shape)} in the file but {tuple(target[key].shape)} in the model."
            )

    if not layers:
        for name, cfg in metadata["layers"].items():
            kwargs = {k: v for k, v in cfg.items() if k not in ("method", "in_features", "out_features")}
            add_adapters(model, method=cfg["method"], target_modules=[name], **kwargs)
        # add_adapters froze the rest: re-open what the file says was trainable.
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, tensor in state.items():
            params[key].copy_(tensor.to(params[key].dtype))
            params[key].requires_grad_(trainable)
    return model
