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

from .counting import (
    c3a_max_rank,
    c3a_parameter_count,
    lora_max_rank,
    lora_parameter_count,
    suggest_block_size,
    valid_block_sizes,
)
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
    size_advice: Callable[[list[tuple[int, int]]], str]  # [(d_in, d_out), ...] -> which sizes fit, and one to try

    def setting(self, size: int) -> str:
        """``"b=24"`` or ``"r=8"``: how tables and plots label one budget."""
        return f"{self.symbol}={size}"


def _c3a_size_advice(shapes: list[tuple[int, int]]) -> str:
    """The block sizes that divide every layer in ``shapes``, and the one ``suggest_block_size`` picks."""
    common = set(valid_block_sizes(*shapes[0]))
    for d_in, d_out in shapes[1:]:
        common &= set(valid_block_sizes(d_in, d_out))
    d_in, d_out = shapes[0]
    suggested = suggest_block_size(d_in, d_out, lora_rank=8)
    return (
        f"block_size=b must divide the in and out features of every targeted layer; valid here: {sorted(common)}. "
        f"suggest_block_size({d_in}, {d_out}, lora_rank=8) = {suggested} gives about the parameters of a "
        "rank-8 LoRA (see also valid_block_sizes)."
    )


def _lora_size_advice(shapes: list[tuple[int, int]]) -> str:
    largest = min(min(shape) for shape in shapes)
    return f"rank=r is a positive integer, at most {largest} for these layers; 8 or 16 are common choices."


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
        size_advice=_c3a_size_advice,
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
        size_advice=_lora_size_advice,
    ),
}


def get_method(name: str) -> AdapterMethod:
    """The registered method called ``name``; a ``ValueError`` listing the choices otherwise."""
    if name not in METHODS:
        raise ValueError(f"method={name!r} is not an adapter method; choose one of {sorted(METHODS)}.")
    return METHODS[name]


def method_for_peft_type(peft_type: str) -> AdapterMethod:
    """The registered method PEFT calls ``peft_type`` (``"C3A"``, ``"LORA"``, or ``"PeftType.LORA"``)."""
    wanted = str(peft_type).upper().rsplit(".", 1)[-1]
    for method in METHODS.values():
        if method.peft_type == wanted:
            return method
    known = sorted(m.peft_type for m in METHODS.values())
    raise ValueError(f"This package reads PEFT adapters of type {known}; this one is {wanted!r}.")
