"""Checkers for notebook 05 (fine-tuning MiniLM)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...c3a.inject import adapter_layers, add_adapters
from .common import ExerciseError, fail_wrapped, ok
from .guard import call, guarded
from .rules import by_the_method

# ---------------------------------------------------------------------------------------------------------------
# Exercise 05.1: the optimizer's parameter groups of the training loop.

EPS = 1e-8  # AdamW's default ε, in ΔW's units: the adapter group's ε is EPS × (the adapters' ΔW scale)
HEAD = "classifier."  # the freshly initialised head's parameters: names starting with this


class _TinyClassifier(torch.nn.Module):
    """A stand-in for MiniLM: attention-like projections to adapt, a LayerNorm, a classifier head."""

    def __init__(self, width: int, labels: int, nested_head: bool):
        super().__init__()
        self.embeddings = torch.nn.Embedding(11, width)
        self.encoder = torch.nn.ModuleDict(
            {name: torch.nn.Linear(width, width) for name in ("query", "key", "value", "dense")}
        )
        self.norm = torch.nn.LayerNorm(width)
        if nested_head:  # RoBERTa's head: classifier.dense, classifier.out_proj
            self.classifier = torch.nn.ModuleDict(
                {"dense": torch.nn.Linear(width, width), "out_proj": torch.nn.Linear(width, labels)}
            )
        else:
            self.classifier = torch.nn.Linear(width, labels)


def _case(method: str, width: int, nested_head: bool = False, **kwargs) -> tuple[torch.nn.Module, float]:
    """A model as the notebook's ``make_model`` builds one, and its adapters' ΔW scale."""
    torch.manual_seed(0)
    model = _TinyClassifier(width, 3, nested_head)
    if method == "full":
        model.requires_grad_(True)
        return model, 1.0
    add_adapters(model, method, ["query", "value"], trainable_modules=["classifier"], **kwargs)
    return model, next(iter(adapter_layers(model).values())).scale


VISIBLE_CASES = (
    ("C3A, block size 4 (ΔW scale 1/d_in)", "c3a", 16, False, {"block_size": 4}),
    ("LoRA, r = 4, alpha = 8 (ΔW scale α/r = 2)", "lora", 16, False, {"rank": 4, "alpha": 8}),
    ("full fine-tuning (no adapters: every weight trains, scale 1)", "full", 16, False, {}),
)
HIDDEN_CASES = (
    ("C3A, block size 8 on width 24, a RoBERTa-like head", "c3a", 24, True, {"block_size": 8}),
    ("C3A with scale=1.0", "c3a", 24, False, {"block_size": 6, "scale": 1.0}),
    ("LoRA, r = 2, alpha = 1 (scale 0.5)", "lora", 24, True, {"rank": 2, "alpha": 1}),
)


GROUP_RULES = {
    "c3a_tutorial.adapter_parameter_groups": "it is the package's version of this exercise's answer; build the "
    "groups yourself from model.named_parameters() and the adapters' scale."
}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


@guarded
def check_optimizer_groups(fn, hidden: bool = False, lr: float = 3.0, head_lr: float = 3e-3) -> None:
    """Exercise 05.1: ``fn(model, lr, head_lr)`` returns AdamW parameter groups: every trainable parameter
    outside the head at ``lr`` with ``eps = 1e-8 × s`` (``s`` the adapters' ΔW scale, 1 without adapters),
    the head (``classifier.*``) at ``head_lr`` with ``eps = 1e-8``, and no frozen parameter."""
    for label, method, width, nested, kwargs in HIDDEN_CASES if hidden else VISIBLE_CASES:
        model, scale = _case(method, width, nested, **kwargs)
        where = f"For {label}:"
        try:
            groups = by_the_method(fn, (model, lr, head_lr), forbidden=GROUP_RULES)
        except ExerciseError:
            raise
        except NotImplementedError:
            fail_wrapped("optimizer_groups is not written yet (it raises NotImplementedError).")
        except Exception as err:  # noqa: BLE001 - the learner's code; say where it broke
            fail_wrapped(f"{where} your function raised {type(err).__name__}: {err}")
        if groups is None:
            fail_wrapped("optimizer_groups returned None: did it end with `return` and the list of groups?")
        if isinstance(groups, torch.optim.Optimizer):
            fail_wrapped(
                "return the list of parameter groups (dicts), not the optimizer: the loop builds AdamW from it."
            )
        groups = list(groups)
        if not groups or not all(isinstance(g, dict) and "params" in g for g in groups):
            fail_wrapped(f"{where} return a list of dicts, each with a 'params' list (and its 'lr' and 'eps').")
        try:  # as the notebook builds it; AdamW fills in what a group leaves out (lr 1e-3, eps 1e-8)
            optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
        except (ValueError, TypeError) as err:
            fail_wrapped(f"{where} torch.optim.AdamW refuses your groups: {err}")
        params = dict(model.named_parameters())
        names = {id(p): n for n, p in params.items()}
        group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        if any(i not in names for i in group_of):
            fail_wrapped(
                f"{where} your groups hold tensors that are not parameters of the model: use model.named_parameters()."
            )
        frozen = [names[i] for i in group_of if not params[names[i]].requires_grad]
        if frozen:
            fail_wrapped(
                f"{where} your groups include parameters that do not train (requires_grad is False), e.g. "
                f"{frozen[0]}: the frozen backbone has no gradient to step on. Keep only p.requires_grad."
            )
        missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in group_of]
        if missing:
            fail_wrapped(
                f"{where} these trainable parameters are in no group, so they would never train: {missing[:4]}."
            )
        head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(HEAD)]
        body = [(n, p) for n, p in model.named_parameters() if p.requires_grad and not n.startswith(HEAD)]
        head_groups = {id(group_of[id(p)]) for p in head}
        body_groups = {id(group_of[id(p)]) for _, p in body}
        if head_groups & body_groups:
            fail_wrapped(
                f"{where} the head's parameters ({HEAD}*) share a group with the adapter's. A freshly initialised "
                f"head then trains at the adapter's learning rate — for C3A at the notebook's lr that is "
                f"{lr:g}, {lr / head_lr:,.0f} times the head's {head_lr:g}. Give the head a group of its own."
            )
        for p in head:
            group = group_of[id(p)]
            if not _close(group["lr"], head_lr):
                fail_wrapped(
                    f"{where} the head's group has lr {group['lr']:g}; it should train at head_lr = {head_lr:g}."
                )
            if not _close(group["eps"], EPS):
                fail_wrapped(
                    f"{where} the head's group has eps {group['eps']:g}. The head is not scaled by the adapters' s: "
                    f"keep AdamW's {EPS:g} there."
                )
        for name, p in body:
            group = group_of[id(p)]
            if not _close(group["lr"], lr):
                fail_wrapped(
                    f"{where} {name} trains at lr {group['lr']:g}; everything outside the head trains at lr = {lr:g}."
                )
            if _close(group["eps"], EPS * scale):
                continue
            if _close(group["eps"], EPS) and scale != 1.0:
                fail_wrapped(
                    f"{where} the adapter group's eps is {EPS:g}, but these adapters have ΔW scale s = {scale:g}: "
                    "their gradients carry the factor s, so a fixed ε weighs 1/s times more against them than "
                    "against the gradients of scale 1 (notebook 04, section 8). Scale ε with s."
                )
            if _close(group["eps"], EPS / scale):
                fail_wrapped(
                    f"{where} the adapter group's eps is {EPS:g} / s: the gradients are s times those of scale 1, "
                    "so ε must follow them the same way — multiply, do not divide."
                )
            if method == "lora" and _close(group["eps"], EPS / width):
                fail_wrapped(
                    f"{where} the adapter group's eps is {EPS:g}/d_in: that is C3A's default scale, but these are "
                    f"LoRA adapters with scale α/r = {scale:g}. Read s from the adapter layers (layer.scale)."
                )
            fail_wrapped(
                f"{where} the adapter group's eps is {group['eps']:g}; with ΔW scale s = {scale:g} it should be "
                f"{EPS:g} × s."
            )
        for group in optimizer.param_groups:
            if group.get("weight_decay", 0.0) != 0.0:
                fail_wrapped(
                    f"{where} a group sets weight_decay = {group['weight_decay']:g}. AdamW shrinks each parameter by "
                    "lr·λ per step — at C3A's large lr that is a large pull to zero, and it breaks the scale × lr "
                    "rule (notebook 04, section 8). The loop trains without weight decay: leave it out."
                )
    ok(
        "the head trains at head_lr with eps 1e-8; every other trainable parameter at lr with eps = 1e-8 × the "
        "adapters' ΔW scale (1 without adapters); nothing frozen is handed to AdamW."
    )


# ---------------------------------------------------------------------------------------------------------------
# Exercise 05.2: the energy rank of a spectrum.


# Cases where the k largest values hold *exactly* the fraction: integer values whose squares sum to a power
# of two, so every share is exact in floating point and "at least" (≥) differs from "more than" (>).
TIES = (
    ([1.0, 1.0, 1.0, 1.0], 0.5),
    ([3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0.625),
    ([2.0, 1.0, 1.0, 1.0, 1.0], 1.0),
)


def _shown(s) -> str:
    """``s`` as a message shows it: whole if short, else its length and first values (a hidden case has up to 40)."""
    values = [round(float(v), 3) for v in s]
    if len(values) <= 8:
        return str(values)
    return f"[{', '.join(map(str, values[:4]))}, …] ({len(values)} values)"


@guarded
def check_energy_rank(fn, seed: int | None = None) -> None:
    """Exercise 05.2: ``fn(s, fraction)`` = how many singular values hold ``fraction`` of ΔW's energy.

    With ``seed``, random spectra (shuffled, of random lengths and fractions) and shuffled ties instead of the
    visible cases."""
    cases = [
        ([3.0, 1.0, 1.0, 1.0], 0.9),
        ([1.0, 1.0, 1.0, 1.0], 0.9),
        ([5.0, 0.0, 0.0], 0.99),
        ([1.0, 1.0, 3.0, 1.0], 0.7),
        TIES[0],
    ]
    if seed is not None:
        rng = np.random.default_rng(seed)
        cases = []
        for _ in range(6):
            s = rng.exponential(size=int(rng.integers(3, 40))) ** 2
            cases.append(([float(v) for v in rng.permutation(s)], float(rng.choice([0.5, 0.8, 0.9, 0.99]))))
        cases += [([float(v) for v in rng.permutation(s)], fraction) for s, fraction in TIES]
    for s, fraction in cases:
        # The reference, from the energy fractions: the k largest values' share of Σ sᵢ², k = 1, 2, ...
        shares = np.cumsum(np.sort(np.abs(np.asarray(s, dtype=float)))[::-1] ** 2) / np.sum(np.square(s))
        want = int(np.searchsorted(shares, fraction - 1e-12) + 1)
        strict = int(np.searchsorted(shares, fraction, side="right") + 1)  # what "share > fraction" gives
        shown = _shown(s)
        got = call(fn, np.array(s), fraction)
        if got is None:
            fail_wrapped("Your function returned None: did it end with a `return` statement?")
        if int(got) == want:
            continue
        in_order = np.cumsum(np.square(s)) / np.sum(np.square(s))
        if s != sorted(s, reverse=True) and int(got) == int(np.searchsorted(in_order, fraction - 1e-12) + 1):
            fail_wrapped(
                f"For s = {shown} (not sorted) you returned {got}, want {want}: sort the values largest first."
            )
        plain = np.cumsum(np.sort(s)[::-1]) / np.sum(s)
        if int(got) == int(np.searchsorted(plain, fraction - 1e-12) + 1):
            fail_wrapped(
                f"For s = {shown} you returned {got}, counting the singular values themselves. Energy is the squared "
                "Frobenius norm, ‖ΔW‖² = Σ sᵢ²: accumulate s**2."
            )
        if int(got) == strict:
            fail_wrapped(
                f"For s = {shown} and fraction = {fraction} you returned {got}, want {want}: the {want} largest values "
                f"hold exactly {fraction} of Σ sᵢ², and the question asks for *at least* that share. A strict "
                "comparison (>) skips the k where the share equals the fraction."
            )
        if s != sorted(s, reverse=True):
            fail_wrapped(
                f"For s = {shown} (not sorted) you returned {got}, want {want}: sort the values largest first."
            )
        fail_wrapped(
            f"For s = {shown} and fraction = {fraction} you returned {got}, want {want}: the smallest k with "
            "s₁² + … + s_k² ≥ fraction · Σ sᵢ²."
        )
    ok("the energy rank counts the largest singular values until they hold the asked-for share of ‖ΔW‖².")
