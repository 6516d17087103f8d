"""Model-level helpers: wrap chosen linear layers with adapters, count, merge, and take them out again.

Names are matched as in Hugging Face PEFT (see ``add_adapters``): a list entry matches a module whose
full name equals it or ends with ``"." + entry``; a single string is a regular expression that must
match the whole name.

``add_adapters`` records on the model which parameters outside the adapters it made trainable (e.g. a
classification head). ``save_adapter`` saves what that record names, whatever their ``requires_grad``
is at the time, so freezing the head for inference does not drop it from the next save.

``save_pretrained`` of a transformers model with adapters writes a checkpoint that is right both ways (see
``checkpoint.save_adapted_pretrained``): the adapted model's own tensors (``query.base_layer.weight``,
``query.kernel``), which loading the checkpoint into the same adapted model (what Hugging Face's ``Trainer``
does on resume and for ``load_best_model_at_end``) restores exactly, and the merged ``query.weight``, which is
what a plain ``from_pretrained`` reads: the merged model, never layers re-initialised at random.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import re
import warnings
from collections.abc import Iterable

import torch
from torch import nn

from .layers import SUPPORTED_BASE_LAYERS, AdapterLinear, base_features, is_supported_base
from .layers import check_positive_number as check_positive_finite
from .methods import get_method
from .targets import ALL_LINEAR, all_linear_names, default_target_modules, task_head_names

# The attribute of the model that lists the trainable parameters outside the adapters, by name.
RECORD_ATTRIBUTE = "c3a_trainable_parameters"


def name_matches(name: str, targets: str | Iterable[str]) -> bool:
    """Whether module ``name`` is named by ``targets``: a whole-name regex (a string) or name suffixes (a list)."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def adapter_layers(model: nn.Module) -> dict[str, AdapterLinear]:
    """Every adapter layer in ``model``, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, AdapterLinear)}


def _supported_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if is_supported_base(m)]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def recorded_trainable(model: nn.Module) -> list[str] | None:
    """The parameters outside the adapters that ``add_adapters`` made trainable, or ``None`` if never recorded."""
    names = getattr(model, RECORD_ATTRIBUTE, None)
    return None if names is None else list(names)


def record_trainable(model: nn.Module, names: Iterable[str]) -> None:
    """Set the record ``save_adapter`` uses: parameter names saved along with the adapters."""
    # A plain list attribute: not a parameter or buffer, so state_dict and save_pretrained ignore it.
    object.__setattr__(model, RECORD_ATTRIBUTE, sorted(set(names)))


def trainable_outside_adapters(model: nn.Module) -> list[str]:
    """The parameters (and buffers) outside the adapters that a save or an export includes, by name.

    The record ``add_adapters`` keeps, independent of ``requires_grad``; for a model that never had one
    (adapters put in by hand), the parameters outside the adapters that have ``requires_grad``.
    """
    record = recorded_trainable(model)
    if record is not None:
        return record
    layers = adapter_layers(model)
    return [n for n, p in model.named_parameters() if p.requires_grad and not _in_adapter_weights(n, layers)]


def _find_targets(model: nn.Module, target_modules, existing: dict) -> list[tuple[str, nn.Module]]:
    targets = [(n, m) for n, m in model.named_modules() if n and name_matches(n, target_modules)]
    # Modules inside an existing adapter (its base_layer) are not new targets.
    targets = [(n, m) for n, m in targets if not any(n.startswith(e + ".") for e in existing)]
    if not targets:
        raise ValueError(
            f"target_modules={target_modules!r} matches no module. The model's linear modules are: "
            f"{_supported_names(model)}"
        )
    for name, module in targets:
        if isinstance(module, AdapterLinear):
            raise ValueError(
                f"Module {name!r} already has a {module.method} adapter. add_adapters wraps a model once: "
                "start again from a fresh base model, or use load_adapter to replace the adapter's weights."
            )
        if not is_supported_base(module):
            kind = type(module).__name__
            article = "an" if kind[:1].upper() in "AEIOU" else "a"
            inside = [n for n in _supported_names(model) if n.startswith(name + ".")][:4]
            hint = f"Name the linear layers inside it instead, e.g. {inside}." if inside else ""
            raise TypeError(
                f"target_modules={target_modules!r} matches {name!r}, which is {article} {kind}: adapters wrap "
                f"{' or '.join(SUPPORTED_BASE_LAYERS)}. {hint}".rstrip()
            )
    return targets


def _named_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Parameters and buffers by name: what the record of trainable modules may hold."""
    return [*model.named_parameters(), *model.named_buffers()]


def _overlaps(name: str, target: str) -> bool:
    return name == target or name.startswith(target + ".") or target.startswith(name + ".")


def _resolve_targets(model: nn.Module, target_modules):
    """``"all-linear"`` and a left-out ``target_modules`` as the list of names they stand for."""
    if target_modules == ALL_LINEAR:
        names = all_linear_names(model)
        if not names:
            raise ValueError("target_modules='all-linear': the model has no linear layer besides its output layer.")
        return names  # full names: a list entry equal to a module's name matches it
    if target_modules is None:
        found = default_target_modules(model)
        if found is None:
            raise ValueError(
                "target_modules is not given and this model has none of the query/value names add_adapters "
                f"knows: name the layers to adapt (or pass 'all-linear'). The model's linear modules are: "
                f"{_supported_names(model)}"
            )
        return found
    return target_modules


def _check_no_overlap(model: nn.Module, targets: list, trainable: list) -> None:
    """Refuse a module both adapted and trained whole: its base weight would train beside the adapter, and
    neither PEFT's format nor a merge has a place for a trained base weight (export_to_peft would drop it)."""
    recorded = recorded_trainable(model) or []
    trainable_names = [n for n, _ in trainable]
    for target, _ in targets:
        for name in trainable_names:
            if _overlaps(name, target):
                raise ValueError(
                    f"{target!r} is both a target (an adapter wraps it) and inside trainable_modules ({name!r}): "
                    "its base weight would train too, which the adapter file, PEFT and merging have no place for. "
                    "Leave it out of one of the two (trainable_modules is for new layers such as the head)."
                )
        made_trainable = [n for n in recorded if n.startswith(target + ".")]
        if made_trainable:
            raise ValueError(
                f"{target!r} was made trainable by an earlier add_adapters ({made_trainable[:2]}): it cannot be "
                "adapted as well. Start again from a fresh base model."
            )


def _check_layers_fit(method: str, targets: list[tuple[str, nn.Module]], layer_kwargs: dict) -> None:
    """Build every adapter once on the meta device: a setting that does not fit one layer fails here, before
    any layer is touched (building the real adapter freezes its base layer)."""
    layer_class = get_method(method).layer_class
    for name, module in targets:
        d_in, d_out = base_features(module)
        layer_class(nn.Linear(d_in, d_out, device="meta"), name=name, **layer_kwargs)


def _check_layer_kwargs(method: str, targets: list[tuple[str, nn.Module]], layer_kwargs: dict) -> None:
    """A ``ValueError`` saying what to pass when a setting is missing or unknown (not a raw ``TypeError``)."""
    spec = get_method(method)
    settings = [p for p in inspect.signature(spec.layer_class.__init__).parameters if p not in ("self", "base_layer")]
    settings.remove("name")
    unknown = sorted(set(layer_kwargs) - set(settings))
    if unknown:
        raise ValueError(
            f"add_adapters(method={method!r}) got {unknown}, which {spec.layer_class.__name__} does not take; "
            f"its settings are {settings}."
        )
    if spec.size_argument not in layer_kwargs:
        shapes = [base_features(module) for _, module in targets]
        raise ValueError(
            f"add_adapters(method={method!r}) needs {spec.size_argument}=..., the size of each adapter. "
            + spec.size_advice(shapes)
        )


def _find_trainable(model: nn.Module, trainable_modules) -> list[tuple[str, nn.Module]]:
    if not trainable_modules:
        return []
    found = [(n, m) for n, m in model.named_modules() if n and name_matches(n, trainable_modules)]
    if found:
        return found
    names = [n for n, _ in model.named_modules() if n]
    last_parts = sorted({n.rpartition(".")[2] for n in names})
    wanted = [trainable_modules] if isinstance(trainable_modules, str) else list(trainable_modules)
    close = sorted({c for w in wanted for c in difflib.get_close_matches(w, last_parts + names, n=3, cutoff=0.6)})
    did_you_mean = f" Did you mean {close}?" if close else ""
    raise ValueError(
        f"trainable_modules={trainable_modules!r} matches no module.{did_you_mean} Names end with one of: "
        f"{last_parts[:40]}{' ...' if len(last_parts) > 40 else ''} (a list entry matches a name's last parts; "
        "a string is a regular expression for the whole name)."
    )


def add_adapters(
    model: nn.Module,
    method: str = "c3a",
    target_modules: str | Iterable[str] | None = None,
    trainable_modules: str | Iterable[str] | None = None,
    **layer_kwargs,
) -> nn.Module:
    """Wrap the linear layers named by ``target_modules`` with adapters, in place; returns ``model``.

    Args:
        model: any ``nn.Module``; its ``nn.Linear`` (or transformers ``Conv1D``, as in GPT-2) layers can
            be adapted.
        method: ``"c3a"`` or ``"lora"`` (the registry ``METHODS`` lists them).
        target_modules: which modules to wrap. A *list* matches names by suffix, as in PEFT: ``"query"``
            matches ``"encoder.layer.0.attention.self.query"`` (a name equal to an entry, or ending with
            ``"." + entry``). A single *string* is a regular expression that must match the whole name,
            e.g. ``r"encoder\\.layer\\.[0-5]\\.attention\\.self\\.(query|value)"``. ``"all-linear"``: every
            linear layer but the output layer (``lm_head``, a ``classifier`` head), as in PEFT. Left out: the
            attention query and value of the model's family (``query``/``value`` for BERT, RoBERTa and ViT,
            ``q_proj``/``v_proj`` for Llama, ``c_attn`` for GPT-2, ``q``/``v`` for T5, ``q_lin``/``v_lin`` for
            DistilBERT; ``targets.default_target_modules``).
        trainable_modules: modules trained along with the adapters, matched the same way, e.g.
            ``["classifier"]`` for a freshly initialised classification head. Every other parameter is
            frozen. They are recorded on the model, and ``save_adapter`` saves them with the adapters.
            Left out (``None``): the head a transformers task model creates freshly (``classifier`` or
            ``score`` of a ``...ForSequenceClassification`` or ``...ForTokenClassification``, ``qa_outputs``
            of a ``...ForQuestionAnswering``), as PEFT's ``task_type`` opens it; ``[]`` trains none. A module
            cannot be both a target and trainable.
        layer_kwargs: the adapter's settings. ``"c3a"``: ``block_size`` (required; it must divide every
            targeted layer's in and out features, see ``valid_block_sizes`` and ``suggest_block_size``),
            ``scale``, ``init_weights``. ``"lora"``: ``rank`` (required), ``alpha``, ``dropout``.

    Learning rate (C3A): C3A's default ``scale = 1 / d_in`` divides the update, and with Adam, no weight
    decay, the zero init and Adam's ``ε`` scaled with the scale (``adapter_parameter_groups``), scale ``s`` at
    learning rate ``η`` trains exactly like scale ``1`` at ``s · η``. So give C3A ``lr ≈ d_in × (a LoRA-like
    lr)`` (``lr=3.0`` at ``d_in = 384`` is an effective ``≈ 7.8e-3``), or pass ``scale=1.0`` and use a LoRA-like
    lr. A typical transformers lr (1e-4) at the default scale trains next to nothing. See ``C3ALinear``.

    Everything is checked before anything changes: on an error the model is left as it was.
    """
    spec = get_method(method)
    target_modules = _resolve_targets(model, target_modules)
    if not isinstance(target_modules, str):
        target_modules = list(target_modules)
        if not target_modules:
            raise ValueError("target_modules is empty: name the linear modules to adapt, e.g. ['query', 'value'].")
    existing = adapter_layers(model)
    targets = _find_targets(model, target_modules, existing)
    _check_layer_kwargs(method, targets, layer_kwargs)
    if trainable_modules is None:  # the task's fresh head, unless an adapter wraps it
        target_names = [n for n, _ in targets]
        trainable_modules = [h for h in task_head_names(model) if not any(_overlaps(h, t) for t in target_names)]
    trainable = _find_trainable(model, trainable_modules)
    _check_no_overlap(model, targets, trainable)
    _check_layers_fit(method, targets, layer_kwargs)
    wrapped = {name: spec.layer_class(module, name=name, **layer_kwargs) for name, module in targets}
    recorded = set(recorded_trainable(model) or ())
    recorded_ids = {id(t) for n, t in _named_tensors(model) if n in recorded}
    if not existing:
        # First call: freeze the base model. A later call (more adapters on the same model) keeps what
        # earlier calls made trainable; the new adapters freeze their own base layers.
        model.requires_grad_(False)
    for name, adapter in wrapped.items():
        _set_submodule(model, name, adapter)
    for _, module in trainable:
        module.requires_grad_(True)
        # Buffers too (a BatchNorm head's running statistics): they are part of what the module learnt, as in
        # PEFT's modules_to_save; without them a reloaded head normalises with the statistics of a fresh one.
        recorded_ids.update(id(t) for t in [*module.parameters(), *module.buffers()])
    # By identity, so that a parameter renamed by this call's wrapping (x.weight -> x.base_layer.weight)
    # keeps its place in the record.
    layers = adapter_layers(model)
    kept = [n for n, t in _named_tensors(model) if id(t) in recorded_ids and not _in_adapter_weights(n, layers)]
    record_trainable(model, kept)
    _guard_save_pretrained(model)
    return model


class _BoundSavePretrained:
    """``model.save_pretrained`` of an adapted model: calls ``save_adapted_pretrained(model, ...)``."""

    def __init__(self, model: nn.Module):
        self.model = model  # a plain reference: deepcopy copies the model and this together, consistently

    def __call__(self, save_directory, *args, **kwargs):
        from .checkpoint import save_adapted_pretrained  # below this file in the import order

        return save_adapted_pretrained(self.model, save_directory, *args, **kwargs)


def _guard_save_pretrained(model: nn.Module) -> None:
    if hasattr(type(model), "save_pretrained"):  # transformers models (and anything else that has one)
        object.__setattr__(model, "save_pretrained", _BoundSavePretrained(model))


def _in_adapter_weights(parameter_name: str, layers: dict[str, AdapterLinear]) -> bool:
    # An adapter's own weights (kernel, lora_A, ...) are saved as adapter weights, not through the record.
    name = parameter_name
    return any(name.startswith(n + ".") and not name.startswith(n + ".base_layer.") for n in layers)


def adapter_parameter_groups(
    model: nn.Module, lr: float, head_lr: float | None = None, eps: float = 1e-8
) -> list[dict]:
    """AdamW parameter groups for a model with adapters, with the ε that makes the learning-rate rule exact.

    A C3A layer's ``ΔW = scale · C(w)``, so its kernel's gradient carries ``scale`` too (about 2e-7 at the
    default ``1/d_in`` on MiniLM): Adam's step ``m / (√v + ε)`` then depends on ε, and scale ``s`` at lr ``η``
    is *not* scale 1 at ``s·η``. With ``ε = s · eps`` it is, exactly (numerator and denominator both carry
    ``s``). So each adapter scale gets its own group with ``eps = scale · eps``: C3A's, and LoRA's ``alpha / r``
    too (its ``A`` and ``B`` gradients carry the scale in the same way, so Adam's step on them no longer depends
    on it; for LoRA that keeps the scale a pure multiplier of ``ΔW``, not an exact lr rule, since ``ΔW = s·B·A``
    is bilinear). Every other trainable parameter (the head, which needs its own, LoRA-like ``head_lr``) keeps
    ``eps``. The training code (``experiments.train``) uses these groups. Weight decay
    is 0 in every group: decoupled decay would shrink ``w`` at a rate set by ``lr`` alone, which breaks the
    rule. Only parameters with ``requires_grad`` are included.

        optimizer = torch.optim.AdamW(adapter_parameter_groups(model, lr=3.0, head_lr=3e-3))

    Each group has a ``"name"`` (``"c3a scale=0.0026"``, ``"lora scale=1"``, ``"other"``) for logs.
    """
    check_positive_finite("lr", lr)
    check_positive_finite("eps", eps)
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("The model has no adapters: call add_adapters first.")
    groups: dict[tuple, dict] = {}
    in_adapters = set()
    for layer in layers.values():
        own = [p for n, p in layer.named_parameters() if not n.startswith("base_layer.") and p.requires_grad]
        in_adapters.update(id(p) for p in layer.parameters())
        key = (layer.method, float(layer.scale))
        name = f"{layer.method} scale={layer.scale:.3g}"
        group = groups.setdefault(
            key, {"params": [], "lr": lr, "eps": eps * float(layer.scale), "weight_decay": 0.0, "name": name}
        )
        group["params"] += own
    other = [p for p in model.parameters() if p.requires_grad and id(p) not in in_adapters]
    if other:
        if head_lr is None:
            raise ValueError(
                f"{len(other)} trainable parameter tensor(s) outside the adapters (e.g. a classification head): "
                "pass head_lr, a LoRA-like learning rate for them (the adapter lr of C3A's default scale would "
                "blow them up)."
            )
        check_positive_finite("head_lr", head_lr)
        groups[("other", None)] = {"params": other, "lr": head_lr, "eps": eps, "weight_decay": 0.0, "name": "other"}
    return [g for g in groups.values() if g["params"]]


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
    """Print how many parameters train, out of how many, as PEFT's method of the same name does.

    ``trainable params: N || all params: M || trainable%: P``. "Trainable" means ``requires_grad``: the
    adapters plus whatever ``trainable_modules`` opened.
    """
    print(format_trainable_parameters(model))


def _untie_before_merge(model: nn.Module, layers: dict[str, AdapterLinear]) -> None:
    """Give an adapted layer whose weight is tied to another (GPT-2's ``lm_head`` and its token embeddings) its
    own copy before a merge, with a warning: merging into the shared tensor would change the other silently."""
    names_by_tensor: dict[int, list[str]] = {}
    for pname, param in model.named_parameters(remove_duplicate=False):
        names_by_tensor.setdefault(id(param), []).append(pname)
    for name, layer in layers.items():
        if layer.merged:
            continue
        weight = layer.base_layer.weight
        others = [n for n in names_by_tensor.get(id(weight), []) if not n.startswith(name + ".")]
        if not others:
            continue
        warnings.warn(
            f"{name}'s weight is tied to {others}: merging would change them too. Untied: {name} gets its own "
            "copy of the weight, the others keep theirs (config.tie_word_embeddings is set to False, so that "
            "save_pretrained and from_pretrained keep them apart), as PEFT's merge leaves tied weights apart.",
            stacklevel=3,
        )
        layer.base_layer.weight = nn.Parameter(weight.detach().clone(), requires_grad=weight.requires_grad)
        config = getattr(model, "config", None)
        if config is not None and getattr(config, "tie_word_embeddings", False):
            config.tie_word_embeddings = False


def merge_adapters(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base weight (the wrappers stay; ``merge_and_unload`` removes them).

    A weight tied to another (GPT-2's ``lm_head``) is untied first, with a warning."""
    layers = adapter_layers(model)
    _untie_before_merge(model, layers)
    for layer in layers.values():
        layer.merge()
    return model


def unmerge_adapters(model: nn.Module) -> nn.Module:
    """Undo ``merge_adapters``."""
    for layer in adapter_layers(model).values():
        layer.unmerge()
    return model


@contextlib.contextmanager
def disable_adapters(model: nn.Module):
    """``with disable_adapters(model):`` runs the base model, as PEFT's ``disable_adapter()`` does.

    Inside the block every adapter layer's forward is its base layer's alone (a merged adapter is unmerged
    for the block, and merged again afterwards: its base weight is then the original up to rounding). The
    adapters are back when the block ends, also when it ends with an exception.

        with torch.no_grad(), disable_adapters(model):
            reference = model(**batch).logits   # the base model's logits
    """
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("The model has no adapters: there is nothing to disable.")
    was_disabled = {name: layer.adapter_disabled for name, layer in layers.items()}
    merged = [layer for layer in layers.values() if layer.merged]
    for layer in merged:
        layer.unmerge()
    for layer in layers.values():
        layer.adapter_disabled = True
    try:
        yield model
    finally:
        for name, layer in layers.items():
            layer.adapter_disabled = was_disabled[name]
        for layer in merged:
            layer.merge()


def _replace_adapters_by_base(model: nn.Module, merge: bool) -> nn.Module:
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("The model has no adapters: there is nothing to unload.")
    if merge:
        _untie_before_merge(model, layers)
    for name, layer in layers.items():
        if merge and not layer.merged:
            layer.merge()
        if not merge and layer.merged:
            layer.unmerge()
        _set_submodule(model, name, layer.base_layer)
    if recorded_trainable(model) is not None:
        object.__delattr__(model, RECORD_ATTRIBUTE)
    if isinstance(model.__dict__.get("save_pretrained"), _BoundSavePretrained):
        object.__delattr__(model, "save_pretrained")  # a plain model again: the class's own save_pretrained
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base weight and put the base layers back; returns ``model``.

    The result has the original module types (``nn.Linear``, ``Conv1D``) and parameter names, so a
    transformers model's ``save_pretrained`` / ``from_pretrained`` round-trips it as a plain model.
    The adapters are gone (save them first with ``save_adapter`` to keep them). As in PEFT, the base
    layers stay frozen.
    """
    return _replace_adapters_by_base(model, merge=True)


def unload(model: nn.Module) -> nn.Module:
    """Remove every adapter *without* merging it (a merged one is unmerged first); returns ``model``.

    Gives back the base model's modules, types and weights as they were before ``add_adapters``.
    """
    return _replace_adapters_by_base(model, merge=False)
