"""Carry adapters to and from Hugging Face PEFT (``peft.PeftModel``).

``export_to_peft(model, directory)`` writes ``adapter_config.json`` and ``adapter_model.safetensors``
the way ``model.save_pretrained`` of a ``PeftModel`` writes them, so that
``peft.PeftModel.from_pretrained(base_model, directory)`` rebuilds the same adapted model.
``import_from_peft(source, model)`` goes the other way. Neither function needs ``peft`` to read or
write files; only a ``PeftModel`` passed as ``source`` does. How each method's weights and settings are
converted is in ``peft_formats``.

PEFT's C3A has no scale (its ``ΔW`` carries ``1 / d_in``), so the exported kernels are rescaled and the
C3A scales are written into the weights file's metadata, where PEFT does not look: ours → PEFT → ours
keeps them. An adapter that comes without them (saved by PEFT itself, or a live ``PeftModel``) is read
with PEFT's ``1 / d_in`` unless ``import_from_peft(..., scale=...)`` says otherwise: ``ΔW`` is the same
either way, only the learning rate a resumed training needs differs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import warnings

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .inject import adapter_layers, record_trainable, trainable_outside_adapters
from .layers import AdapterLinear, check_positive_number, is_supported_base
from .methods import get_method, method_for_peft_type
from .paths import check_output
from .peft_formats import PEFT_FORMATS, PeftFormat, reverse_kernel, to_peft_c3a_kernel  # noqa: F401 - re-exported

PREFIX = "base_model.model."  # what PEFT puts before every module name in a saved adapter
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
METADATA_KEY = "c3a_tutorial"  # our entry in the weights file's metadata: the settings PEFT's config cannot hold
# PEFT's TaskType values (peft.utils.TaskType), so that a typo is refused here rather than by PEFT at load time.
TASK_TYPES = ("SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION")

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


def _write_peft_files(directory: str, config: dict, state: dict[str, torch.Tensor], kept: dict) -> None:
    with open(os.path.join(directory, CONFIG_NAME), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    metadata = {"format": "pt"}
    if kept:
        metadata[METADATA_KEY] = json.dumps({"layers": kept}, sort_keys=True)
    save_file(state, os.path.join(directory, WEIGHTS_NAME), metadata=metadata)


def _write_peft_directory(directory: str, config: dict, state: dict[str, torch.Tensor], kept: dict) -> None:
    """Write the adapter into a new folder beside ``directory``, then swap it in with renames: an interrupted
    export leaves the previous directory as it was (or none), never a new config beside old weights. Files of
    the previous directory other than the adapter's (a README, a tokenizer) are copied into the new one first."""
    directory = os.path.abspath(directory)
    parent, base = os.path.split(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    old = f"{staging}.old"
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would make the export private to this user
        _write_peft_files(staging, config, state, kept)
        if os.path.isdir(directory):
            for entry in os.listdir(directory):
                if entry in (CONFIG_NAME, WEIGHTS_NAME, "adapter_model.bin"):
                    continue  # the stale adapter: replaced, and a legacy .bin beside the new weights would mislead
                source = os.path.join(directory, entry)
                copy = shutil.copytree if os.path.isdir(source) else shutil.copy2
                copy(source, os.path.join(staging, entry))
            os.rename(directory, old)
        try:
            os.rename(staging, directory)
        except BaseException:
            if os.path.isdir(old):
                os.rename(old, directory)  # the previous directory back in its place
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


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
    if task_type not in ("auto", None, *TASK_TYPES):
        raise ValueError(
            f"task_type={task_type!r} is not a PEFT task type; choose one of {list(TASK_TYPES)}, None, "
            "or 'auto' (guessed from the model's class name)."
        )
    check_output(directory, "directory", what="the PEFT adapter", create_parents=True)
    layers = adapter_layers(model)
    method = _exportable_method(layers)
    formats = PEFT_FORMATS[method]
    kept = {name: {k: getattr(layer, k) for k in formats.kept} for name, layer in sorted(layers.items())}
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
    _write_peft_directory(directory, config, state, kept if formats.kept else {})
    return directory


def _read_weights(path: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a safetensors file and the layer settings we kept in its metadata (``{}`` if none)."""
    with safe_open(path, framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
        ours = (f.metadata() or {}).get(METADATA_KEY)
    return state, (json.loads(ours).get("layers", {}) if ours else {})


def _read_peft_directory(directory: str) -> tuple[dict, dict[str, torch.Tensor], dict]:
    config_path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"No {CONFIG_NAME} in {directory!r}: is it a PEFT adapter directory?")
    with open(config_path) as f:
        config = json.load(f)
    weights = os.path.join(directory, WEIGHTS_NAME)
    if os.path.isfile(weights):
        return (config, *_read_weights(weights))
    legacy = os.path.join(directory, "adapter_model.bin")
    if os.path.isfile(legacy):
        return config, torch.load(legacy, map_location="cpu", weights_only=True), {}
    raise FileNotFoundError(f"No {WEIGHTS_NAME} (or adapter_model.bin) in {directory!r}.")


def _read_peft(source) -> tuple[dict, dict[str, torch.Tensor], dict, nn.Module | None]:
    """``(config, state dict with PEFT's keys, kept settings, base model or None)`` from a directory or PeftModel."""
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
    return config, state, {}, base


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


def _kept_settings(formats: PeftFormat, names, kept: dict, scale: float | None, trainable: bool) -> dict:
    """Per layer, the settings PEFT's config cannot hold: ``scale=`` if given, else what export_to_peft kept."""
    if "scale" not in formats.kept:
        return {name: {} for name in names}
    if scale is not None:
        check_positive_number("scale", scale)
        return {name: {"scale": scale} for name in names}
    unknown = sorted(n for n in names if "scale" not in kept.get(n, {}))
    if unknown and trainable:
        warnings.warn(
            f"The PEFT C3A adapter carries no C3A scale for {len(unknown)} layer(s) (PEFT's config has none; "
            "export_to_peft keeps it in the weights file, PEFT's own save and a live PeftModel do not): they get "
            "PEFT's own 1/d_in. ΔW and the logits are the same either way, but training goes on at another speed "
            "if the adapter was trained with another scale: pass import_from_peft(..., scale=...) to choose it.",
            stacklevel=3,
        )
    settings = {name: dict(kept.get(name, {})) for name in names}
    for name, values in settings.items():  # a bad value in the file fails here, before any layer changes
        if "scale" in values:
            check_positive_number(f"The C3A scale of {name!r} in the weights file", values["scale"])
    return settings


def import_from_peft(
    source, model: nn.Module | None = None, trainable: bool = True, scale: float | None = None
) -> nn.Module:
    """Rebuild a PEFT C3A or LoRA adapter as ``c3a_tutorial`` adapters; returns the adapted model.

    Args:
        source: a PEFT adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``), or a
            ``peft.PeftModel`` with a C3A or LoRA adapter (its active adapter is taken).
        model: the base model *without* adapters to add them to (changed in place). Required for a
            directory; for a ``PeftModel``, ``None`` means a copy of its base model.
        trainable: whether the imported adapters and ``modules_to_save`` are left trainable.
        scale: C3A only, the scale of every imported layer. ``None``: the scale ``export_to_peft`` kept in the
            weights file; for an adapter without one (saved by PEFT, or a live ``PeftModel``) PEFT's own
            ``1 / d_in``, with a warning when ``trainable``. The kernel is converted so that ``ΔW`` is PEFT's
            whatever the scale; the scale decides only how fast further training moves it.

    Everything is checked before the model changes.
    """
    config, state, kept, base = _read_peft(source)
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
    settings = _kept_settings(formats, sorted(adapters), kept, scale, trainable)

    for name, tensors in sorted(adapters.items()):
        formats.from_peft(model, name, tensors, config, settings[name])
    for layer in adapter_layers(model).values():  # add_adapters froze the rest; set what the adapter trains
        for param in (p for n, p in layer.named_parameters() if not n.startswith("base_layer.")):
            param.requires_grad_(trainable)
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, tensor in extra.items():
            params[key].copy_(tensor.to(params[key].dtype))
            if isinstance(params[key], nn.Parameter):
                params[key].requires_grad_(trainable)
    record_trainable(model, list(extra))  # buffers too (BatchNorm statistics): save_adapter keeps them
    return model
