"""Saving and loading adapters: one file holds the adapter weights, every other parameter
``add_adapters`` made trainable (e.g. a classification head), keyed by their names in the model, and
metadata that says how to rebuild the adapters: method, per-layer settings and shapes.

What is saved besides the adapters is what ``add_adapters`` *recorded* as trainable (``trainable_modules``),
not whatever has ``requires_grad`` at the time: a head frozen for inference is still saved. The record
is written into the file's metadata, and ``load_adapter`` restores it.

``*.safetensors`` paths are written with safetensors (metadata in its header), anything else with
``torch.save``. A save writes a temporary file next to the target and moves it into place with
``os.replace``, so an interrupted save leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
import warnings

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .inject import adapter_layers, add_adapters, record_trainable, recorded_trainable, trainable_outside_adapters
from .layers import base_features, is_supported_base
from .methods import METHODS, get_method
from .paths import check_output

FORMAT_NAME = "c3a_tutorial.adapter"
FORMAT_VERSION = 1
_NOT_SETTINGS = ("method", "in_features", "out_features")  # per-layer metadata that is not a layer argument


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (a trainable module's buffers, e.g. BatchNorm statistics, are saved too)."""
    return {**dict(model.named_buffers()), **dict(model.named_parameters())}


def _adapter_weight_names(model: nn.Module) -> list[str]:
    """The adapters' own parameters (``….kernel``, ``….lora_A``, …), as the registry names them."""
    return [
        f"{name}.{weight}"
        for name, layer in adapter_layers(model).items()
        for weight in get_method(layer.method).weight_names
    ]


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights and the parameters ``add_adapters`` made trainable, keyed by parameter name.

    Independent of the current ``requires_grad``: freezing everything for inference saves the same.
    """
    if not adapter_layers(model):
        raise ValueError("The model has no adapters: call add_adapters first.")
    params = _named_tensors(model)
    names = _adapter_weight_names(model) + trainable_outside_adapters(model)
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(
            f"The model no longer has {missing}, which add_adapters recorded as trainable. Was a module replaced "
            "after add_adapters? Add adapters to the model as it is now."
        )
    return {name: params[name].detach().clone().contiguous() for name in names}


def adapter_metadata(model: nn.Module) -> dict:
    """What ``load_adapter`` needs to rebuild and check the adapters, and the record of trainable parameters."""
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
        "trainable": trainable_outside_adapters(model),
    }


def _write_safetensors(path: str, state: dict[str, torch.Tensor], metadata: dict) -> None:
    save_file(state, path, metadata={"c3a_tutorial": json.dumps(metadata)})


def _write_torch(path: str, state: dict[str, torch.Tensor], metadata: dict) -> None:
    torch.save({"metadata": metadata, "state_dict": state}, path)


def _write_atomically(path: str, write, *args) -> None:
    """``write(temporary_path, *args)`` next to ``path``, then ``os.replace`` it into place."""
    temporary = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"  # same folder: os.replace stays atomic
    try:
        write(temporary, *args)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def save_adapter(model: nn.Module, path: str | os.PathLike) -> None:
    """Save ``adapter_state_dict(model)`` and its metadata: safetensors for ``*.safetensors``, else torch.

    The file appears complete or not at all: an interrupted save leaves the previous file intact.
    """
    for name, layer in adapter_layers(model).items():
        if layer.merged:
            raise ValueError(f"Adapter {name!r} is merged: call unmerge_adapters(model) before saving.")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory: give save_adapter a file name, e.g. 'adapter.safetensors'.")
    check_output(path, "file", what="the adapter")  # a missing or unwritable folder: one clear line, not deep inside
    state = {k: v.cpu() for k, v in adapter_state_dict(model).items()}
    writer = _write_safetensors if path.endswith(".safetensors") else _write_torch
    _write_atomically(path, writer, state, adapter_metadata(model))


def _read_adapter_file(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "adapter_config.json")):
            raise ValueError(
                f"{path!r} is a PEFT adapter directory (it has adapter_config.json): read it with "
                "import_from_peft(directory, model=base_model), not load_adapter."
            )
        raise ValueError(f"{path!r} is a directory: load_adapter reads one file written by save_adapter.")
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
    _check_metadata(path, metadata)
    return metadata, state


def _check_metadata(path: str, metadata: dict) -> None:
    """A ``ValueError`` naming the field, not a ``KeyError`` later, when the metadata lacks one load_adapter reads."""

    def refuse(what: str) -> None:
        raise ValueError(
            f"The adapter file {path!r} has metadata without {what}: it was changed after save_adapter wrote it, "
            "or written by something else. Save it again with save_adapter. The model was not changed."
        )

    layers = metadata.get("layers")
    if not isinstance(layers, dict) or not layers:
        refuse("'layers' (a table of the adapted layers)")
    for name, cfg in layers.items():
        if not isinstance(cfg, dict):
            refuse(f"a table of settings for {name!r}")
        if cfg.get("method") not in METHODS:
            refuse(f"a known 'method' for {name!r} (one of {sorted(METHODS)})")
        for key in ("in_features", "out_features", get_method(cfg["method"]).size_argument):
            if isinstance(cfg.get(key), bool) or not isinstance(cfg.get(key), int):
                refuse(f"an integer {key!r} for {name!r}")
    trainable = metadata.get("trainable")
    if trainable is not None and not (isinstance(trainable, list) and all(isinstance(t, str) for t in trainable)):
        refuse("a list of names in 'trainable'")


def _layer_settings(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _NOT_SETTINGS}


def _check_existing_adapter(name: str, layer, cfg: dict) -> None:
    if layer.method != cfg["method"]:
        raise ValueError(f"Module {name!r} has a {layer.method} adapter but the file holds {cfg['method']}.")
    if layer.merged:
        raise ValueError(f"Adapter {name!r} is merged: call unmerge_adapters(model) before loading.")
    for key, value in layer.adapter_config().items():
        if key in cfg and cfg[key] != value:
            raise ValueError(
                f"Module {name!r}: the model's adapter has {key}={value!r} but the file has "
                f"{key}={cfg[key]!r}. Load into a fresh base model, or add adapters with the same settings."
            )


def _check_layers(model: nn.Module, described: dict[str, dict]) -> None:
    """Every adapter the file describes fits the model: same method, settings and layer shape."""
    layers = adapter_layers(model)
    modules = dict(model.named_modules())
    for name, cfg in described.items():
        if name in layers:
            _check_existing_adapter(name, layers[name], cfg)
            have = (layers[name].out_features, layers[name].in_features)
        elif name in modules and is_supported_base(modules[name]):
            if layers:
                raise ValueError(f"The file has an adapter for {name!r} but the model's adapters do not include it.")
            have = tuple(reversed(base_features(modules[name])))
        else:
            raise ValueError(f"The file has an adapter for {name!r}, which is not a linear layer in this model.")
        want = (cfg["out_features"], cfg["in_features"])
        if have != want:
            raise ValueError(
                f"Module {name!r} is {have[0]}x{have[1]} (out x in) in this model but {want[0]}x{want[1]} "
                "in the adapter file: it was trained for a different model."
            )
    if layers and set(layers) != set(described):
        raise ValueError(f"The model has adapters the file does not: {sorted(set(layers) - set(described))}.")


def _parameters_after_load(model: nn.Module, described: dict[str, dict]) -> dict[str, torch.Tensor]:
    """The model's parameters by name as they will be once the file's adapters are in (nothing is changed)."""
    target = _named_tensors(model)
    if adapter_layers(model):
        return target
    for name, cfg in described.items():
        base = model.get_submodule(name)
        # A stand-in on the meta device: the adapter's parameter names and shapes, no memory, no change.
        probe_base = nn.Linear(cfg["in_features"], cfg["out_features"], device="meta")
        probe = get_method(cfg["method"]).layer_class(probe_base, **_layer_settings(cfg))
        target.update({f"{name}.{k}": p for k, p in probe.named_parameters() if not k.startswith("base_layer.")})
        for k, p in base.named_parameters():
            target[f"{name}.base_layer.{k}"] = target.pop(f"{name}.{k}", p)
    return target


def _check_tensors(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> None:
    for key, tensor in state.items():
        if key not in target:
            raise ValueError(f"The adapter file holds {key!r}, which this model does not have.")
        if tuple(target[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{key!r} has shape {tuple(tensor.shape)} in the file but {tuple(target[key].shape)} in the "
                "model: the file was saved from a different model (e.g. a head with another number of labels). "
                "The model was not changed."
            )


def _expected_tensors(metadata: dict, state: dict[str, torch.Tensor]) -> set[str]:
    """What the file's metadata says it holds: each described adapter's weights and the recorded parameters."""
    layers = metadata["layers"].items()
    adapters = {f"{name}.{w}" for name, cfg in layers for w in get_method(cfg["method"]).weight_names}
    saved = metadata.get("trainable")  # files from before the record: every saved non-adapter tensor
    return adapters | set(k for k in state if k not in adapters) if saved is None else adapters | set(saved)


def _check_complete(path: str, metadata: dict, state: dict[str, torch.Tensor], strict: bool) -> dict:
    """The tensors to load: all of them, after refusing (``strict``) or warning about missing and extra ones."""
    expected = _expected_tensors(metadata, state)
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if not missing and not unexpected:
        return state
    problems = []
    if missing:
        problems.append(f"it is missing {missing}, which its metadata describes")
    if unexpected:
        problems.append(f"it holds {unexpected}, which its metadata does not describe")
    message = f"The adapter file {path!r} is incomplete or was changed after save_adapter wrote it: " + "; ".join(
        problems
    )
    if strict:
        raise ValueError(
            f"{message}. The model was not changed. load_adapter(..., strict=False) loads the tensors the file "
            "describes and has, and leaves the others as they are."
        )
    warnings.warn(f"{message}. Loaded the rest; the missing ones are left as they were.", stacklevel=3)
    return {k: v for k, v in state.items() if k in expected}


def load_adapter(model: nn.Module, path: str | os.PathLike, trainable: bool = True, strict: bool = True) -> nn.Module:
    """Load an adapter saved by ``save_adapter`` into ``model``; returns ``model``.

    If ``model`` has no adapters yet, they are added first, as the file describes (so a fresh base
    model is enough). If it has, they must match the file. Every tensor's name and shape is checked
    before anything is changed: on any error the model is left as it was. ``trainable`` sets
    ``requires_grad`` of everything loaded (``False`` for inference); what a later ``save_adapter``
    saves does not depend on it. A PEFT adapter directory is read by ``import_from_peft`` instead.

    ``strict`` (default): a file that lacks a tensor its metadata describes (an adapter's kernel, the head),
    or holds one it does not describe, is refused, naming them. ``strict=False`` warns instead, loads the
    described tensors the file has and leaves the missing ones as they are (zero, random, or from an earlier
    load), as ``load_state_dict(strict=False)`` does.
    """
    path = os.fspath(path)
    metadata, state = _read_adapter_file(path)
    described = metadata["layers"]
    _check_layers(model, described)
    _check_tensors(state, _parameters_after_load(model, described))
    state = _check_complete(path, metadata, state, strict)

    if not adapter_layers(model):
        for name, cfg in described.items():
            add_adapters(
                model,
                method=cfg["method"],
                target_modules=re.escape(name),
                trainable_modules=[],
                **_layer_settings(cfg),
            )
    params = _named_tensors(model)
    with torch.no_grad():
        for key, tensor in state.items():
            params[key].copy_(tensor.to(params[key].dtype))
            if isinstance(params[key], nn.Parameter):
                params[key].requires_grad_(trainable)
    adapter_weights = set(_adapter_weight_names(model))
    saved = metadata.get("trainable")  # files from before the record: every saved non-adapter tensor
    saved = [k for k in state if k not in adapter_weights] if saved is None else saved
    record_trainable(model, (recorded_trainable(model) or []) + list(saved))
    return model
