"""Adapter layers: ``C3ALinear`` and, as the baseline, ``LoRALinear``. One interface for both.

Both wrap a frozen linear map (``base_layer``) and add a trainable update ``ΔW``::

    y = base_layer(x) + x @ ΔWᵀ

* C3A: ``ΔW = scale · block_circulant(kernel)``, applied with FFTs (``block_circulant_matmul``).
* LoRA: ``ΔW = (alpha / r) · B A``, applied as two thin matmuls.

``delta_weight()`` gives the dense ``ΔW`` (always ``d_out × d_in``); ``merge()`` adds it into the base
weight (zero overhead at inference), ``unmerge()`` takes it out again.

The base layer is an ``nn.Linear`` (weight ``d_out × d_in``, ``y = x Wᵀ + b``) or transformers'
``Conv1D``, which GPT-2 builds its attention and MLP from (weight stored ``d_in × d_out``,
``y = x W + b``). Only the weight's orientation differs: merging a ``Conv1D`` adds ``ΔWᵀ``.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings

import torch
from torch import nn

from .block_circulant import block_circulant, block_circulant_matmul
from .counting import check_block_size, check_positive_int

C3A_INITS = ("zeros", "gaussian", "xavier_uniform", "kaiming_uniform")
SUPPORTED_BASE_LAYERS = ("nn.Linear", "transformers' Conv1D (GPT-2)")


def _conv1d_class() -> type | None:
    # transformers is optional and slow to import. A Conv1D instance can only exist once its module has
    # been imported, so looking in sys.modules is enough to recognise one.
    module = sys.modules.get("transformers.pytorch_utils")
    return getattr(module, "Conv1D", None)


def is_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is transformers' ``Conv1D`` (weight stored ``d_in × d_out``)."""
    conv1d = _conv1d_class()
    return conv1d is not None and isinstance(module, conv1d)


def is_supported_base(module: nn.Module) -> bool:
    """Whether an adapter can wrap ``module``: an ``nn.Linear`` or transformers' ``Conv1D``."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def base_features(module: nn.Module) -> tuple[int, int]:
    """``(d_in, d_out)`` of a supported base layer."""
    if is_conv1d(module):
        d_in, d_out = module.weight.shape
        return int(d_in), int(d_out)
    return module.in_features, module.out_features


def check_positive_number(name: str, value) -> None:
    """A ``ValueError`` unless ``value`` is a finite number above zero (nan, inf, 0 and negatives are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")


def check_supported_base(cls: type, base_layer: nn.Module, name: str) -> None:
    """A ``TypeError`` naming the supported base layers when ``base_layer`` is not one of them."""
    if not is_supported_base(base_layer):
        article = "an" if type(base_layer).__name__[:1].upper() in "AEIOU" else "a"
        raise TypeError(
            f"{cls.__name__} wraps an nn.Linear or a transformers Conv1D, but {name} is {article} "
            f"{type(base_layer).__name__}. Supported base layers: {', '.join(SUPPORTED_BASE_LAYERS)}."
        )


class AdapterLinear(nn.Module):
    """What ``C3ALinear`` and ``LoRALinear`` share: a frozen base layer, merge and unmerge.

    ``fan_in_fan_out`` is ``True`` for a ``Conv1D`` base, whose weight is ``ΔW``'s transpose in shape.
    """

    method: str = ""
    # Set by ``disable_adapters(model)``: the forward is the base layer's alone. A class default, so that a
    # layer pickled before the flag existed reads as enabled.
    adapter_disabled: bool = False

    def __init__(self, base_layer: nn.Module, name: str = "the layer"):
        # Subclasses validate their arguments before calling this, so a bad argument never touches the base.
        super().__init__()
        self.base_layer = base_layer
        self.base_layer.requires_grad_(False)
        self.in_features, self.out_features = base_features(base_layer)
        self.fan_in_fan_out = is_conv1d(base_layer)
        self.merged = False

    # The wrapped layer's weight and bias, read through: model code that looks at them (T5's feed-forward reads
    # ``self.wo.weight.dtype``) works on an adapted layer as on the plain one, as with PEFT's layers.
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.base_layer, "bias", None)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint from save_pretrained of an adapted model holds, beside base_layer.weight and the adapter,
        # the merged weight and bias under the plain names (for a plain from_pretrained): not this layer's.
        if prefix + "base_layer.weight" in state_dict:
            state_dict.pop(prefix + "weight", None)
            state_dict.pop(prefix + "bias", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _adapter_dtype(self) -> torch.dtype:
        # Adapter weights stay in float32 (or float64 in float64 tests) even for a half-precision base.
        weight_dtype = self.base_layer.weight.dtype
        return weight_dtype if weight_dtype in (torch.float32, torch.float64) else torch.float32

    def delta_weight(self) -> torch.Tensor:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def adapter_config(self) -> dict:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def merge(self) -> None:
        """Add ``ΔW`` into the base weight; the forward pass then costs what the base layer costs."""
        if self.merged:
            warnings.warn("merge(): the adapter is already merged; nothing to do.", stacklevel=2)
            return
        weight = self.base_layer.weight
        weight.add_(self._delta_as_weight().to(weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract ``ΔW`` from the base weight again (exact up to floating-point rounding)."""
        if not self.merged:
            warnings.warn("unmerge(): the adapter is not merged; nothing to do.", stacklevel=2)
            return
        weight = self.base_layer.weight
        weight.sub_(self._delta_as_weight().to(weight.dtype))
        self.merged = False

    def _delta_as_weight(self) -> torch.Tensor:
        # ΔW in the base weight's layout: d_out × d_in for nn.Linear, d_in × d_out for Conv1D.
        delta = self.delta_weight()
        return delta.T if self.fan_in_fan_out else delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.merged or self.adapter_disabled:
            return result
        return result + self.adapter_output(x).to(result.dtype)


class C3ALinear(AdapterLinear):
    """A frozen linear layer plus a block-circulant update: ``y = base(x) + scale · x @ C(w)ᵀ``.

    ``C(w)`` is the ``d_out × d_in`` block-circulant matrix of the kernel ``w`` (``block_circulant``):
    a grid of ``b × b`` blocks, block ``(i, j)`` being ``circulant(w[i, j])``, the circulant whose
    first column is ``w[i, j]``. So ``ΔW = scale · C(w)``.

    Args:
        base_layer: the layer to adapt, an ``nn.Linear`` (``d_out × d_in``) or transformers' ``Conv1D``;
            it is frozen.
        block_size: ``b``, which must divide ``d_in`` and ``d_out``. The kernel ``w`` has shape
            ``(d_out // b, d_in // b, b)``: ``d_out · d_in / b`` trainable numbers.
        scale: multiplies ``ΔW``. Defaults to ``1 / d_in``, the reference implementation's choice.
            Block ``i`` of the output sums ``d_in / b`` circular convolutions of length ``b``, so the
            update grows with ``d_in``; dividing by ``d_in`` keeps it of order one whatever the layer
            width.
        init_weights: ``"zeros"`` (default: the adapted model starts identical to the base),
            ``"gaussian"``, ``"xavier_uniform"`` or ``"kaiming_uniform"`` (fans of the full layer).
        name: used in error messages.

    Learning rate: with Adam (AdamW, weight decay 0) and the zero init, training with scale ``s`` and
    learning rate ``η`` follows the same path as scale ``1`` with learning rate ``s · η``, exactly when
    Adam's ``ε`` is scaled by ``s`` too (the kernel's gradient carries ``s``; ``adapter_parameter_groups``
    builds such groups, ``tests/c3a/test_inject.py`` checks it). With one ``ε`` for every scale it holds only
    roughly, as C3A's kernel gradients are tiny at the default scale. So the default scale ``1 / d_in`` needs
    ``lr ≈ d_in × (the lr you would give LoRA)``: ``lr=3.0`` at ``d_in = 384`` is an effective
    ``3.0 / 384 ≈ 7.8e-3``. To use an ordinary LoRA-like learning rate instead, pass ``scale=1.0``; the
    result exports to PEFT all the same.
    """

    method = "c3a"

    def __init__(
        self,
        base_layer: nn.Module,
        block_size: int,
        scale: float | None = None,
        init_weights: str = "zeros",
        name: str = "the layer",
    ):
        check_supported_base(type(self), base_layer, name)
        check_block_size(*base_features(base_layer), block_size, layer=name)
        if init_weights not in C3A_INITS:
            raise ValueError(f"init_weights={init_weights!r} is not one of {C3A_INITS}.")
        if scale is not None:  # nan, inf, 0 or a negative scale would give a ΔW that is nonsense, silently
            check_positive_number("scale", scale)
        super().__init__(base_layer, name=name)
        self.block_size = int(block_size)
        self.scale = 1.0 / self.in_features if scale is None else float(scale)
        b = self.block_size
        self.kernel = nn.Parameter(
            torch.zeros(
                self.out_features // b,
                self.in_features // b,
                b,
                dtype=self._adapter_dtype(),
                device=base_layer.weight.device,
            )
        )
        self.reset_kernel(init_weights)

    @torch.no_grad()
    def reset_kernel(self, init_weights: str = "zeros") -> None:
        """(Re)initialise the kernel; see the class docstring for the choices."""
        if init_weights == "zeros":
            self.kernel.zero_()
        elif init_weights == "gaussian":
            nn.init.normal_(self.kernel)
        elif init_weights == "xavier_uniform":
            bound = math.sqrt(6.0 / (self.in_features + self.out_features))
            nn.init.uniform_(self.kernel, -bound, bound)
        elif init_weights == "kaiming_uniform":
            bound = math.sqrt(1.0 / self.in_features)
            nn.init.uniform_(self.kernel, -bound, bound)
        else:
            raise ValueError(f"init_weights={init_weights!r} is not one of {C3A_INITS}.")

    def delta_weight(self) -> torch.Tensor:
        """The dense ``ΔW = scale · block_circulant(kernel)``, shape ``(d_out, d_in)``."""
        return self.scale * block_circulant(self.kernel)

    # The operator's path: "auto" (per call, from the device, dtype, shape and token count: see
    # c3a.path_choice.explain_path), or "fft" / "dense" to override it, e.g. ``layer.path = "fft"``.
    path: str = "auto"

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        # The scale is applied inside, in float32: a float16 model's unscaled product could overflow.
        return block_circulant_matmul(x, self.kernel, path=self.path, scale=self.scale)

    def adapter_config(self) -> dict:
        return {"method": self.method, "block_size": self.block_size, "scale": self.scale}

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, scale={self.scale:.3g}, merged={self.merged}"


class LoRALinear(AdapterLinear):
    """A frozen linear layer plus a low-rank update: ``y = base(x) + (alpha / r) · x Aᵀ Bᵀ``.

    Args:
        base_layer: the layer to adapt, an ``nn.Linear`` or transformers' ``Conv1D``; it is frozen.
        rank: ``r``; ``A`` is ``r × d_in`` (Kaiming-uniform init, as in PEFT), ``B`` is ``d_out × r``
            (zeros, so the adapted model starts identical to the base).
        alpha: ``ΔW`` is scaled by ``alpha / r``. Defaults to ``r`` (scale 1).
        dropout: dropout on the adapter's input (training only).
        name: used in error messages.
    """

    method = "lora"

    def __init__(
        self,
        base_layer: nn.Module,
        rank: int,
        alpha: float | None = None,
        dropout: float = 0.0,
        name: str = "the layer",
    ):
        check_supported_base(type(self), base_layer, name)
        check_positive_int(rank=rank)
        d_in, d_out = base_features(base_layer)
        if rank > min(d_in, d_out):  # more parameters, no more rank: B A has rank <= min(d_in, d_out)
            raise ValueError(
                f"rank={rank} is larger than {name} allows (in_features={d_in}, out_features={d_out}): "
                f"ΔW = B A has rank ≤ {min(d_in, d_out)}, so choose rank ≤ {min(d_in, d_out)}."
            )
        if alpha is not None:  # alpha=0 would keep ΔW at zero for ever
            check_positive_number("alpha", alpha)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        super().__init__(base_layer, name=name)
        self.rank = int(rank)
        self.alpha = float(rank if alpha is None else alpha)
        self.scale = self.alpha / self.rank
        factory = {"dtype": self._adapter_dtype(), "device": base_layer.weight.device}
        self.lora_A = nn.Parameter(torch.empty(self.rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta_weight(self) -> torch.Tensor:
        """The dense ``ΔW = (alpha / r) · B A``, shape ``(d_out, d_in)``."""
        return self.scale * (self.lora_B @ self.lora_A)

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x).to(self.lora_A.dtype)
        return self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)

    def adapter_config(self) -> dict:
        return {"method": self.method, "rank": self.rank, "alpha": self.alpha, "dropout": self.dropout_p}

    @property
    def dropout_p(self) -> float:
        return self.dropout.p if isinstance(self.dropout, nn.Dropout) else 0.0

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"
