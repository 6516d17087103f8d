"""The kinds of adapted layer the benchmark times, each declared once: ``BENCH_METHODS``.

A name such as ``"c3a-b64"`` is a kind and a size. Everything the benchmark and its report need to know about a kind
(its size's name, its parameter count, which sizes fit a layer, how to build it, its colour, whether our operator's
profile applies) is asked of its declaration, never switched on its name. Our two kinds take their label, colour,
size's name, symbol and parameter count from the experiments' registry (``experiments.methods``); PEFT's C3A layer,
timed on its own, is declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..c3a.counting import c3a_parameter_count
from ..c3a.layers import C3ALinear, LoRALinear
from .methods import get_experiment_method


@dataclass(frozen=True)
class BenchMethod:
    """One kind of adapted layer: ``"<kind>-<symbol><size>"`` names it, e.g. ``"c3a-b64"``."""

    kind: str  # "c3a", "lora", "peft-c3a"
    label: str  # for legends and tables
    size_argument: str  # "block_size" or "rank": the package registry's name for the size
    symbol: str  # "b" or "r"
    parameter_count: Callable[[int, int, int], int]  # (d_out, d_in, size) -> trainable numbers
    fits: Callable[[int, int, int], bool]  # (d_out, d_in, size) -> can this size adapt that layer?
    build: Callable[[nn.Linear, int], nn.Module]  # (frozen base, size) -> the adapted layer, weights random
    colour: str  # a matplotlib colour: one hue per kind (lighter shades for further sizes)
    our_operator: bool = False  # True: rows of this kind get the C3A operator's profile (--profile)
    needs: str | None = None  # an optional package it needs ("peft")
    implements: str | None = None  # another kind it is an implementation of, at the same size ("c3a" for PEFT's)


def _divides(d_out: int, d_in: int, b: int) -> bool:
    return d_in % b == 0 and d_out % b == 0


def _build_lora(base: nn.Linear, rank: int) -> nn.Module:
    layer = LoRALinear(base, rank=rank)
    nn.init.normal_(layer.lora_B)  # not zero: the update's cost is what is timed
    return layer


def _build_peft_c3a(base: nn.Linear, block_size: int) -> nn.Module:
    from peft import C3AConfig
    from peft.tuners.c3a.layer import C3ALinear as PeftC3ALinear

    config = C3AConfig(block_size=block_size, init_weights="gaussian")
    layer = PeftC3ALinear(base, "default", config=config, block_size=block_size)
    layer.base_layer.requires_grad_(False)
    return layer


def _declare(name: str, **fields) -> BenchMethod:
    """One of this package's methods as the experiments declare it (``experiments.methods``): its label, colour, size
    name, symbol and parameter count are asked there, so a table or figure of the benchmark and of the sweep agree."""
    method = get_experiment_method(name)
    return BenchMethod(
        kind=name,
        label=f"{method.label} (ours)",
        size_argument=method.size_field,
        symbol=method.symbol,
        parameter_count=method.layer_parameters,
        colour=method.colour,
        **fields,
    )


BENCH_METHODS: dict[str, BenchMethod] = {
    "lora": _declare("lora", fits=lambda o, i, r: 1 <= r <= min(o, i), build=_build_lora),
    "c3a": _declare(
        "c3a",
        fits=_divides,
        build=lambda base, b: C3ALinear(base, block_size=b, init_weights="gaussian"),
        our_operator=True,
    ),
    # PEFT's C3A layer on its own (the experiments train PEFT's methods through get_peft_model, not this layer).
    "peft-c3a": BenchMethod(
        kind="peft-c3a",
        label="C3A (PEFT)",
        size_argument="block_size",
        symbol="b",
        parameter_count=c3a_parameter_count,
        fits=_divides,
        build=_build_peft_c3a,
        colour="tab:olive",
        needs="peft",
        implements="c3a",
    ),
}


def _names() -> str:
    return ", ".join(f"'{k}-{m.symbol}<{m.size_argument.replace('_', ' ')}>'" for k, m in BENCH_METHODS.items())


def parse_method(name: str) -> dict:
    """``"lora-r8"`` → ``{"name": "lora-r8", "kind": "lora", "rank": 8, "size": 8}``; ``"c3a-b64"``,
    ``"peft-c3a-b64"`` → block size 64. A ``ValueError`` names the forms it accepts."""
    kind, _, arg = str(name).rpartition("-")
    method = BENCH_METHODS.get(kind)
    if method is not None and arg.startswith(method.symbol) and arg[len(method.symbol) :].isdigit():
        size = int(arg[len(method.symbol) :])
        if size >= 1:
            return {"name": name, "kind": kind, method.size_argument: size, "size": size}
        raise ValueError(f"Method {name!r}: its {method.size_argument.replace('_', ' ')} must be at least 1.")
    raise ValueError(f"Unknown method {name!r}: use {_names()}, e.g. lora-r8 or c3a-b64.")


def method_of(name: str) -> BenchMethod:
    """The declaration of the kind ``name`` (e.g. ``"c3a-b64"``) belongs to."""
    return BENCH_METHODS[parse_method(name)["kind"]]


def available(method: BenchMethod) -> bool:
    if method.needs is None:
        return True
    try:
        __import__(method.needs)
    except ImportError:
        return False
    return True


def build_layer(method: str, base: nn.Linear) -> nn.Module:
    """The layer ``method`` names, wrapping ``base`` (frozen), adapter weights random (not zero)."""
    spec = parse_method(method)
    return BENCH_METHODS[spec["kind"]].build(base, spec["size"])


def method_parameters(method: str, d_out: int, d_in: int) -> int:
    """Trainable parameters of ``method`` on a ``d_out × d_in`` layer."""
    spec = parse_method(method)
    return BENCH_METHODS[spec["kind"]].parameter_count(d_out, d_in, spec["size"])


def fits(method: str, d_out: int, d_in: int) -> bool:
    """Whether ``method``'s size can adapt a ``d_out × d_in`` layer (a block size must divide both sides)."""
    spec = parse_method(method)
    return BENCH_METHODS[spec["kind"]].fits(d_out, d_in, spec["size"])
