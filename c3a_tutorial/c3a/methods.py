"""The registry of adapter methods: each method is declared once, here, and everything else asks.

A method is a layer class plus what the rest of the package needs to know about it without switching
on its name: which argument sets its size (``block_size`` for C3A, ``rank`` for LoRA), how many
parameters and what rank that size buys on a ``d_out × d_in`` layer, which tensors an adapter file
holds, and what Hugging Face PEFT calls it. Adding a third method means one new layer class and one
new ``AdapterMethod`` entry below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .counting import c3a_max_rank, c3a_parameter_count, lora_max_rank, lora_parameter_count
from .layers import AdapterLinear, C3ALinear, LoRALinear


@dataclass(frozen=True)
class AdapterMethod:
    name: str  # "c3a"
    layer_class: type[AdapterLinear]
    size_argument: str  # the keyword of layer_class that sets the budget: "block_size" or "rank"
    symbol: str  # how the notebooks write that size: "b" or "r"
    parameter_count: Callable[[int, int, int], int]  # (d_out, d_in, size) -> trainable numbers
    max_rank: Callable[[int, int, int], int]  # (d_out, d_in, size) -> largest rank of ΔW
    weight_names: tuple[str, ...]  # the adapter's own parameters, as saved in a file
    peft_type: str  # PEFT's name for the method ("C3A", "LORA")

    def setting(self, size: int) -> str:
        """``"b=24"`` or ``"r=8"``: how tables and plots label one budget."""
        return f"{self.symbol}={size}"


METHODS: dict[str, AdapterMethod] = {
    "c3a": AdapterMethod(
        name="c3a",
        layer_class=C3ALinear,
        size_argument="block_size",
        symbol="b",
        parameter_count=c3a_parameter_count,
        max_rank=c3a_max_rank,
        weight_names=("kernel",),
        peft_type="C3A",
    ),
    "lora": AdapterMethod(
        name="lora",
        layer_class=LoRALinear,
        size_argument="rank",
        symbol="r",
        parameter_count=lora_parameter_count,
        max_rank=lora_max_rank,
        weight_names=("lora_A", "lora_B"),
        peft_type="LORA",
    ),
}


def get_method(name: str) -> AdapterMethod:
    """The registered method called ``name``; a ``ValueError`` listing the choices otherwise."""
    if name not in METHODS:
        raise ValueError(f"method={name!r} is not an adapter method; choose one of {sorted(METHODS)}.")
    return METHODS[name]
