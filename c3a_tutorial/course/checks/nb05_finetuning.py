"""Checkers for notebook 05 (fine-tuning MiniLM)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...c3a.block_circulant import block_circulant
from ...c3a.inject import adapter_layers, add_adapters
from .common import ExerciseError, fail_wrapped, ok
from .guard import guarded
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
def _learner_call(fn, args, rules, name: str, where: str):
    """``fn(*args)`` under the exercise's method rules; a crash in the learner's code becomes a one-line hint."""
    try:
        return by_the_method(fn, args, forbidden=rules)
    except ExerciseError:
        raise
    except NotImplementedError:
        fail_wrapped(f"{name} is not written yet (it raises NotImplementedError).")
    except Exception as err:  # noqa: BLE001 - the learner's code; say where it broke
        fail_wrapped(f"{where} your function raised {type(err).__name__}: {err}")


def check_optimizer_groups(fn, hidden: bool = False, lr: float = 3.0, head_lr: float = 3e-3) -> None:
    """Exercise 05.1: ``fn(model, lr, head_lr)`` returns AdamW parameter groups: every trainable parameter
    outside the head at ``lr`` with ``eps = 1e-8 × s`` (``s`` the adapters' ΔW scale, 1 without adapters),
    the head (``classifier.*``) at ``head_lr`` with ``eps = 1e-8``, and no frozen parameter."""
    for label, method, width, nested, kwargs in HIDDEN_CASES if hidden else VISIBLE_CASES:
        model, scale = _case(method, width, nested, **kwargs)
        where = f"For {label}:"
        groups = _learner_call(fn, (model, lr, head_lr), GROUP_RULES, "optimizer_groups", where)
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
# Exercise 05.2: the energy rank of a C3A update, from its kernel's spectra (notebook 03's rank theorem).

SLACK = 1e-9  # shares within this of the fraction count as equal: an SVD's values carry rounding errors
LARGE = (4, 6, 512)  # its dense ΔW (2048 × 3072 float64) takes 48 MiB, its spectra 0.2 MiB
BUDGET = 3 * 2**20  # bytes of NumPy memory (or one torch tensor) the large case may take: 1/16 of the dense ΔW
ENERGY_RULES = {
    "c3a_tutorial.block_circulant": "it builds the dense d_out × d_in ΔW; work from the kernel's spectra instead.",
    "c3a_tutorial.course.spectral.c3a_singular_values": "it is the package's version of this exercise; take the "
    "FFT of the kernel yourself and find the singular values of each frequency block.",
    "c3a_tutorial.course.spectral.frequency_blocks": "take the kernel's FFT yourself: np.fft.fft(kernel, axis=-1).",
    "c3a_tutorial.course.spectral.frequency_block_diagonal": "it builds the dense ΔW (and its DFTs); work from "
    "the kernel's spectra instead.",
}


def _exact_tie_kernel(m: int, n: int, b: int) -> np.ndarray:
    """A kernel whose every frequency block is [[1, 0, ...], [0, 1, ...]] ⊕ 0: min(m, n)·b singular values of
    exactly 1, so a fraction j / (min(m, n)·b) is held by exactly j of them."""
    kernel = np.zeros((m, n, b))
    kernel[np.arange(min(m, n)), np.arange(min(m, n)), 0] = 1.0
    return kernel


def _kernel_of_spectrum(spectrum) -> np.ndarray:
    """The 1 × 1 × b kernel whose FFT is ``spectrum`` (real, with spectrum[f] = spectrum[b − f])."""
    return np.fft.ifft(np.asarray(spectrum, dtype=float)).real.reshape(1, 1, -1)


_ENERGY_MISTAKES = {
    "half": ". You counted one frequency of each conjugate pair {{f, b − f}} (rfft's half): a real kernel has "
    "Ŵ_(b−f) = conj(Ŵ_f), with the same singular values, and ΔW has both. Count every one of the b frequency blocks.",
    "entries": ": you ranked the entries |Ŵ_f[i, j]| of the spectra. Their squares add up to ‖ΔW‖² too, but they "
    "are not singular values: take the singular values of each (d_out/b) × (d_in/b) block Ŵ_f (notebook 03, "
    "section 5).",
    "strict": ": the {want} largest singular values hold exactly {fraction} of ‖ΔW‖², and the question asks for *at "
    "least* that share. A strict comparison (>) skips the k where the share equals the fraction.",
    "frequencies": ": you counted whole frequencies by their energy ‖Ŵ_f‖². The energy rank counts singular values, "
    "and each block Ŵ_f has min(d_out, d_in)/b of them.",
}


def _energy_cases(hidden: bool) -> list[tuple[str, np.ndarray, float]]:
    rng = np.random.default_rng(5 if hidden else 0)
    wave = 3 * np.cos(2 * np.pi * np.arange(5) / 5)  # frequencies 1 and 4, in every block: one strong pair
    cases = [
        ("a random 2 × 3 × 4 kernel (d_out = 8, d_in = 12)", rng.standard_normal((2, 3, 4)), 0.8),
        ("a 3 × 2 × 5 kernel (odd b) with one strong frequency pair", rng.standard_normal((3, 2, 5)) + wave, 0.6),
        ("a 2 × 3 × 4 kernel whose 8 singular values are all 1", _exact_tie_kernel(2, 3, 4), 0.5),
    ]
    if hidden:
        cases = [
            ("a random 3 × 2 × 6 kernel", rng.standard_normal((3, 2, 6)), 0.95),
            ("a 2 × 4 × 7 kernel (odd b), smooth along k", np.cumsum(rng.standard_normal((2, 4, 7)), axis=-1), 0.9),
            ("a 1 × 1 × 6 kernel of spectrum [4, .5, .3, .2, .3, .5]", _kernel_of_spectrum([4, .5, .3, .2, .3, .5]),
             0.99),
            ("a 4 × 3 × 8 kernel whose 24 singular values are all 1", _exact_tie_kernel(4, 3, 8), 0.625),
            ("a 3 × 1 × 5 kernel whose 5 singular values are all 1", _exact_tie_kernel(3, 1, 5), 0.6),
        ]  # fmt: skip
    return cases


def _rank_of(values, fraction: float) -> int:
    """The smallest k whose k largest ``values`` hold at least ``fraction`` of Σ values² (up to ``SLACK``)."""
    energy = np.sort(np.abs(np.asarray(values, dtype=float)).ravel())[::-1] ** 2
    return int(np.searchsorted(np.cumsum(energy) / energy.sum(), fraction - SLACK) + 1)


def _as_rank(got, where: str) -> int:
    if got is None:
        fail_wrapped("Your function returned None: did it end with a `return` statement?")
    if isinstance(got, (float, np.floating)) and float(got).is_integer():
        got = int(got)
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        fail_wrapped(f"{where} your function returned {got!r}; return the energy rank as a whole number.")
    return int(got)


@guarded
def check_c3a_energy_rank(fn, hidden: bool = False) -> None:
    """Exercise 05.2: ``fn(kernel, fraction)`` = the energy rank of ``block_circulant(kernel)`` (the smallest k
    whose k largest singular values hold at least ``fraction`` of ‖ΔW‖²), from the kernel's spectra: the dense
    ΔW is refused (``block_circulant`` and the spectral helpers raise; a large case has a memory budget)."""
    for label, kernel, fraction in _energy_cases(hidden):
        where = f"For {label} and fraction = {fraction}:"
        dense = block_circulant(kernel)
        want = _rank_of(np.linalg.svd(dense, compute_uv=False), fraction)  # the reference: a dense SVD
        spectra = np.fft.fft(kernel, axis=-1)
        m, n, b = kernel.shape
        half = [f for f in range(b) if f <= b - f]  # one frequency of each conjugate pair {f, b − f}
        got = _learner_call(fn, (kernel.copy(), fraction), ENERGY_RULES, "c3a_energy_rank", where)
        got = _as_rank(got, where)
        if got == want:
            continue
        singular = np.linalg.svd(spectra.transpose(2, 0, 1), compute_uv=False)  # (b, min(m, n)), per frequency
        frequency_energy = np.linalg.norm(spectra, axis=(0, 1)) ** 2
        mistakes = {  # what each typical mistake returns on this case
            "half": _rank_of(singular[half], fraction) if len(half) < b else want,
            "entries": _rank_of(np.abs(spectra), fraction),
            "strict": _rank_of(singular, fraction + 2 * SLACK),
            "frequencies": _rank_of(np.sqrt(frequency_energy), fraction),
        }
        named = [name for name, rank in mistakes.items() if rank == got]
        if len(named) == 1:  # where two mistakes give the same number, naming one could mislead: say what is asked
            said = _ENERGY_MISTAKES[named[0]].format(want=want, fraction=fraction)
            fail_wrapped(f"{where} you returned {got}, want {want}{said}")
        fail_wrapped(
            f"{where} you returned {got}, want {want}: pool the singular values of all b blocks Ŵ_f = "
            "fft(kernel, axis=-1)[:, :, f], then the smallest k with s₁² + … + s_k² ≥ fraction · Σ sᵢ²."
        )
    kernel = np.random.default_rng(7 if hidden else 3).standard_normal(LARGE)
    spectra = np.fft.fft(kernel, axis=-1).transpose(2, 0, 1)
    want = _rank_of(np.linalg.svd(spectra, compute_uv=False), 0.9)  # the theorem; the small cases checked it
    m, n, b = LARGE
    where = f"For a random {m} × {n} × {b} kernel (ΔW {m * b} × {n * b}) and fraction = 0.9:"
    try:
        got = by_the_method(
            fn, (kernel, 0.9), forbidden=ENERGY_RULES, budget_bytes=BUDGET, dense_bytes=m * n * b * b * 8
        )
    except ExerciseError as err:  # the memory rule's message speaks of "the size above": say which size
        fail_wrapped(f"{where} {err}")
    if _as_rank(got, where) != want:
        fail_wrapped(f"{where} you returned {got}, want {want}; the small cases above passed: check large b.")
    ok(
        "the energy rank of ΔW from the b frequency blocks' singular values, conjugate pairs counted twice, "
        "without building the dense ΔW."
    )
