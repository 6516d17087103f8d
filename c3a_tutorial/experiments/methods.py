"""Every way of fine-tuning the experiments compare, each declared once: the rest of ``experiments`` asks here.

Three sources:

* **this package**: C3A and LoRA, the adapter layers of ``c3a_tutorial.c3a`` (their own registry,
  ``c3a.methods``, says how they are sized and saved);
* **PEFT**: the paper's baselines built by Hugging Face PEFT itself (``peft.get_peft_model``) — rsLoRA
  (LoRA scaled by ``α/√r``), DoRA (LoRA plus a trained magnitude per output), VeRA (frozen shared random
  matrices, trained scaling vectors) and FourierFT (a few trained spectral coefficients of ``ΔW``);
* **full fine-tuning**: every weight trains; the reference, not an adapter.

A declaration says what the sweep, its report and the training code need without switching on a name: the
``FinetuneConfig`` field that sets the budget and how tables write it (``b=24``, ``r=8``, ``n=768``), how many
adapter parameters that budget trains on a ``d_out × d_in`` layer (the head excluded, for every method alike),
the default learning-rate grid, the label, colour and marker of the figure, and how the model is built.

LoRA's ``α``: this package's LoRA and PEFT's LoRA-family baselines use ``lora_alpha`` = 8, PEFT's default,
fixed across ranks (``FinetuneConfig.lora_alpha``), so ``ΔW = (8/r)·B·A`` (rsLoRA: ``(8/√r)·B·A``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from ..c3a import methods as adapter_methods
from ..c3a.inject import add_adapters, name_matches
from ..c3a.layers import base_features, is_supported_base
from ..c3a.targets import task_head_names

if TYPE_CHECKING:  # annotations only: config imports this module
    from .config import FinetuneConfig

HEAD = "classifier"  # BERT's freshly initialised head: trained by every method, never counted as adapter parameters


def head_names(model: nn.Module) -> list[str]:
    """The freshly initialised head of ``model`` by the model's class (``classifier`` for BERT, ``score`` for
    Llama and GPT-2, ``pre_classifier`` and ``classifier`` for DistilBERT), also inside a PEFT wrapper; ``[HEAD]``
    for a model that is not a transformers task model."""
    get_base = getattr(model, "get_base_model", None)  # a PeftModel: its model without the wrapper
    inner = get_base() if callable(get_base) else model
    return task_head_names(inner) or [HEAD]


def is_head_parameter(name: str, heads: list[str] | tuple[str, ...] = (HEAD,)) -> bool:
    """Whether a parameter name belongs to the head (``heads``: ``head_names(model)``), also inside a PEFT wrapper
    (``base_model.model.classifier.modules_to_save.default.weight``)."""
    return any(name.startswith(head + ".") or f".{head}." in name for head in heads)


@dataclass(frozen=True)
class ExperimentMethod:
    name: str  # "c3a": the key everywhere (configs, run ids, the results file)
    label: str  # "C3A": tables and the figure
    source: str  # "this package", "PEFT" or "-" (full fine-tuning)
    size_field: str | None  # the FinetuneConfig field that sets the budget; None: full fine-tuning
    symbol: str | None  # how a budget is written: "b" in "b=24"
    layer_parameters: Callable[[int, int, int], int] | None  # (d_out, d_in, size) -> trained numbers per layer
    lr_grid: tuple[float, ...]  # the sweep's first learning rates to try, per setting
    default_lr: float  # a single run's lr when none is given (the CLI's default)
    colour: str
    marker: str
    build: Callable[[nn.Module, FinetuneConfig], nn.Module]  # (pretrained model, config) -> the model to train
    describe: str  # one line: what trains

    @property
    def is_adapter(self) -> bool:
        return self.size_field is not None

    def setting(self, size: int | None) -> str:
        """``"b=24"``, ``"r=8"``, ``"n=768"``; ``"-"`` for full fine-tuning."""
        return "-" if size is None else f"{self.symbol}={size}"

    def adapter_parameters(self, shapes: list[tuple[int, int]], size: int | None) -> int:
        """Trained adapter numbers over the targeted layers ``[(d_out, d_in), ...]`` (the head excluded)."""
        if self.layer_parameters is None:
            raise ValueError(f"{self.label} is not an adapter: it has no adapter parameter count.")
        return sum(self.layer_parameters(d_out, d_in, size) for d_out, d_in in shapes)


# --------------------------------------------------------------------------------------------------
# How each method builds its model


def _build_ours(name: str):
    def build(model: nn.Module, config: FinetuneConfig) -> nn.Module:
        kwargs = config.adapter_size()
        if name == "lora":
            kwargs["alpha"] = config.lora_alpha
        return add_adapters(model, name, config.target_modules, trainable_modules=head_names(model), **kwargs)

    return build


def _build_full(model: nn.Module, config: FinetuneConfig) -> nn.Module:
    return model.requires_grad_(True)


def _build_peft(make_config: Callable[[object, FinetuneConfig], object]):
    """A builder that wraps the model with ``peft.get_peft_model``; the head trains as PEFT's ``modules_to_save``."""

    def build(model: nn.Module, config: FinetuneConfig) -> nn.Module:
        try:
            import peft
        except ImportError as err:
            raise ImportError("PEFT's baselines need the peft package: pip install 'c3a-tutorial[peft]'.") from err
        return peft.get_peft_model(model, make_config(peft, config, head_names(model)))

    return build


def _peft_common(config: FinetuneConfig, heads: list[str]) -> dict:
    return {"target_modules": list(config.target_modules), "modules_to_save": heads}


def _lora_family(use_rslora: bool = False, use_dora: bool = False):
    def make(peft, config, heads):
        return peft.LoraConfig(
            r=config.rank, lora_alpha=config.lora_alpha, use_rslora=use_rslora, use_dora=use_dora,
            **_peft_common(config, heads),
        )  # fmt: skip

    return make


def _vera(peft, config, heads):
    return peft.VeraConfig(r=config.rank, **_peft_common(config, heads))


def _fourierft(peft, config, heads):
    return peft.FourierFTConfig(n_frequency=config.n_frequency, **_peft_common(config, heads))


# --------------------------------------------------------------------------------------------------
# Parameter counts per layer (d_out, d_in, size)


def _dora_parameters(d_out: int, d_in: int, rank: int) -> int:
    return rank * (d_in + d_out) + d_out  # LoRA's A and B, plus one magnitude per output feature


def _vera_parameters(d_out: int, d_in: int, rank: int) -> int:
    return d_out + rank  # the scaling vectors λ_b (d_out) and λ_d (r); the random A and B are frozen and shared


def _fourierft_parameters(d_out: int, d_in: int, n_frequency: int) -> int:
    return n_frequency  # the trained spectral coefficients; their positions are fixed at random


_C3A = adapter_methods.get_method("c3a")
_LORA = adapter_methods.get_method("lora")

EXPERIMENT_METHODS: dict[str, ExperimentMethod] = {
    "c3a": ExperimentMethod(
        "c3a", "C3A", "this package", "block_size", _C3A.symbol, _C3A.parameter_count,
        lr_grid=(0.3, 1.0, 3.0), default_lr=3.0, colour="tab:blue", marker="o", build=_build_ours("c3a"),
        describe="block-circulant ΔW, one length-b kernel per b×b block, scale 1/d_in",
    ),
    "lora": ExperimentMethod(
        "lora", "LoRA", "this package", "rank", _LORA.symbol, _LORA.parameter_count,
        lr_grid=(3e-3, 1e-2, 3e-2), default_lr=1e-2, colour="tab:orange", marker="s", build=_build_ours("lora"),
        describe="ΔW = (α/r)·B·A, α = lora_alpha (PEFT's default 8)",
    ),
    "rslora": ExperimentMethod(
        "rslora", "rsLoRA (PEFT)", "PEFT", "rank", "r", _LORA.parameter_count,
        lr_grid=(1e-3, 3e-3, 1e-2), default_lr=3e-3, colour="tab:brown", marker="v",
        build=_build_peft(_lora_family(use_rslora=True)),
        describe="LoRA with ΔW = (α/√r)·B·A",
    ),
    "dora": ExperimentMethod(
        "dora", "DoRA (PEFT)", "PEFT", "rank", "r", _dora_parameters,
        lr_grid=(3e-3, 1e-2, 3e-2), default_lr=1e-2, colour="tab:red", marker="D",
        build=_build_peft(_lora_family(use_dora=True)),
        describe="LoRA's direction update plus a trained magnitude per output feature",
    ),
    "vera": ExperimentMethod(
        "vera", "VeRA (PEFT)", "PEFT", "rank", "r", _vera_parameters,
        lr_grid=(3e-3, 1e-2, 3e-2), default_lr=1e-2, colour="tab:purple", marker="^", build=_build_peft(_vera),
        describe="frozen random A, B shared by all layers; trained vectors scale their rows and columns",
    ),
    "fourierft": ExperimentMethod(
        "fourierft", "FourierFT (PEFT)", "PEFT", "n_frequency", "n", _fourierft_parameters,
        lr_grid=(3e-3, 1e-2, 3e-2), default_lr=1e-2, colour="tab:green", marker="P", build=_build_peft(_fourierft),
        describe="n trained 2-D Fourier coefficients of ΔW at fixed random frequencies",
    ),
    "full": ExperimentMethod(
        "full", "full fine-tuning", "-", None, None, None,
        lr_grid=(1e-4, 3e-4, 1e-3), default_lr=1e-4, colour="0.3", marker="*", build=_build_full,
        describe="every weight of the model",
    ),
}  # fmt: skip
FULL = "full"


def get_experiment_method(name: str) -> ExperimentMethod:
    """The declared method called ``name``; a ``ValueError`` listing the choices otherwise."""
    if name not in EXPERIMENT_METHODS:
        raise ValueError(f"method={name!r} is not one of {list(EXPERIMENT_METHODS)}.")
    return EXPERIMENT_METHODS[name]


def target_shapes(model: nn.Module, target_modules) -> list[tuple[int, int]]:
    """``[(d_out, d_in), ...]`` of the linear layers (``nn.Linear``, GPT-2's ``Conv1D``) ``target_modules`` names
    (matched as ``add_adapters`` and PEFT match: a list by name suffix, a string as a whole-name regular
    expression)."""
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    return [
        tuple(reversed(base_features(m)))
        for name, m in model.named_modules()
        if is_supported_base(m) and name_matches(name, targets)
    ]


def adapter_parameter_count(model: nn.Module) -> int:
    """Trainable numbers of a built model outside its head: what every method's budget is counted as."""
    heads = head_names(model)
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and not is_head_parameter(n, heads))


__all__ = [
    "EXPERIMENT_METHODS",
    "ExperimentMethod",
    "FULL",
    "HEAD",
    "adapter_parameter_count",
    "get_experiment_method",
    "head_names",
    "is_head_parameter",
    "target_shapes",
]
