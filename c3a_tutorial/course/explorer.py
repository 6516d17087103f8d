"""Notebook 03's rank/parameter explorer: both methods' *exact* best fits to a target, at one budget.

What it shows is computed by the pure function ``explorer_state(target, b, keep, permute)``, which the unit
tests call directly; ``rank_parameter_explorer()`` only wires widgets to it. For a ``d × d`` target ``T``
(one of ``TARGETS``) and a C3A block size ``b``:

* C3A's best fit is the orthogonal projection of ``T`` onto block-circulant matrices (``best_c3a_kernel``);
  optionally only its ``keep`` strongest frequency blocks are kept, which builds a C3A update of lower rank;
* LoRA gets the same budget, the largest ``r`` with ``r·2d ≤ d²/b`` (``lora_rank_for_budget``), and its best
  fit is the truncated SVD;
* both errors for *every* budget, their singular values and C3A's energy per frequency;
* ``permute`` shuffles the target's input columns: LoRA's error does not move, C3A's does.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field

import numpy as np

from ..c3a.block_circulant import block_circulant
from ..c3a.counting import (
    block_circulant_rank,
    c3a_parameter_count,
    check_block_size,
    lora_parameter_count,
    lora_rank_for_budget,
    valid_block_sizes,
)
from . import viz
from .fitting import best_c3a_kernel, best_lora_update, one_blas_thread
from .real_update import load_real_update
from .spectral import c3a_singular_values, frequency_energy, keep_frequencies, strongest_frequencies

SIZE = 192  # the explorer's targets are 192 x 192: the stored MiniLM update's crop; 192 = 2^6 · 3 has 14 divisors
REAL = "MiniLM ΔW (full fine-tuning)"
TARGETS = ("random", "decaying spectrum", "low rank (8)", "shift-structured", REAL)


def make_target(name: str, d: int = SIZE, seed: int = 0) -> np.ndarray:
    """A ``d × d`` float64 target of the family ``name`` (one of ``TARGETS``), scaled to ``‖T‖_F = 1``.

    random: i.i.d. Gaussian (flat spectrum); decaying spectrum: ``U diag(1/i) Vᵀ`` with random orthogonal
    ``U, V``; low rank (8): a product of ``d × 8`` and ``8 × d`` Gaussians; shift-structured:
    ``T_ij = exp(−((i − j)/3)²)·(1 + cos(2π i/d)/2)``, a position-dependent blur; the MiniLM update: the stored
    ``ΔW`` of one query layer after full fine-tuning (``load_real_update``), cropped to ``d × d``.
    """
    rng = np.random.default_rng(seed)
    i = np.arange(d, dtype=float)
    if name == "random":
        t = rng.standard_normal((d, d))
    elif name == "decaying spectrum":
        u, _ = np.linalg.qr(rng.standard_normal((d, d)))
        v, _ = np.linalg.qr(rng.standard_normal((d, d)))
        t = (u / (i + 1)) @ v.T
    elif name == "low rank (8)":
        t = rng.standard_normal((d, 8)) @ rng.standard_normal((8, d))
    elif name == "shift-structured":
        t = np.exp(-(((i[:, None] - i[None, :]) / 3) ** 2)) * (1 + 0.5 * np.cos(2 * np.pi * i / d))[:, None]
    elif name == REAL:
        full = load_real_update()
        if d > min(full.shape):
            raise ValueError(f"the stored update is {full.shape[0]} x {full.shape[1]}; d = {d} is too large.")
        t = full[:d, :d]
    else:
        raise ValueError(f"Unknown target {name!r}; choose one of {list(TARGETS)}.")
    return t / np.linalg.norm(t)


@functools.lru_cache(maxsize=32)
def _cached_target(name: str, d: int, seed: int, permute: bool) -> np.ndarray:
    t = make_target(name, d, seed)
    if permute:
        t = t[:, np.random.default_rng(seed + 1).permutation(t.shape[1])]
    t.setflags(write=False)
    return t


def _prepared_target(name: str, d: int, seed: int, permute: bool) -> np.ndarray:
    # The target, its columns permuted if asked (a fixed permutation drawn with seed + 1); cached, read-only.
    return _cached_target(name, d, seed, permute)


def budget_block_sizes(d_in: int, d_out: int) -> list[int]:
    """The block sizes the budget slider offers: valid ``b ≥ 2`` at which a rank-1 LoRA still fits C3A's budget."""
    return [b for b in valid_block_sizes(d_in, d_out) if b >= 2 and d_in * d_out // b >= d_in + d_out]


@dataclass
class ExplorerState:
    """Everything the explorer shows for one setting (matrices float64, errors relative to ``‖T‖_F``)."""

    target_name: str
    b: int
    r: int  # LoRA's rank at the same budget
    keep: int  # frequency blocks C3A keeps (b: all of them)
    permute: bool
    target: np.ndarray = field(repr=False)
    c3a: np.ndarray = field(repr=False)  # C3A's best fit (from the kept frequencies)
    lora: np.ndarray = field(repr=False)  # LoRA's best fit
    c3a_parameters: int
    c3a_degrees_of_freedom: int  # dimension of the updates C3A can reach: (d_out/b)·(d_in/b)·keep
    lora_parameters: int
    lora_degrees_of_freedom: int  # dimension of the rank-r matrices: r·(d_in + d_out − r), as B A = (B G)(G⁻¹ A)
    c3a_rank: int
    lora_rank: int
    c3a_error: float
    lora_error: float
    c3a_error_all_frequencies: float
    frequency_energy: np.ndarray = field(repr=False)  # ‖ΔW_f‖² of C3A's best fit, all frequencies
    kept_frequencies: np.ndarray = field(repr=False)
    curve_budgets: list[int] = field(repr=False)  # C3A's parameters at every offered b
    curve_c3a: list[float] = field(repr=False)  # C3A's best error at every offered b
    curve_lora_budgets: list[int] = field(repr=False)  # LoRA's parameters at every rank up to the largest budget
    curve_lora: list[float] = field(repr=False)
    spectra: dict = field(repr=False)  # name -> singular values, largest first
    readout: str = field(repr=False, default="")

    @property
    def c3a_energy(self) -> float:
        return 1 - self.c3a_error**2

    @property
    def lora_energy(self) -> float:
        return 1 - self.lora_error**2

    def summary(self) -> str:
        """Plain-text version of the read-out, for printing in a notebook."""
        shape = "x".join(map(str, self.target.shape))
        return (
            f"target {self.target_name} ({shape}{', inputs permuted' if self.permute else ''}), "
            f"budget of C3A b = {self.b}\n"
            f"  C3A  b={self.b:<3d} keeping {self.keep:>3d} of {self.b} frequencies: "
            f"{self.c3a_parameters:>6,} parameters ({self.c3a_degrees_of_freedom:>6,} degrees of freedom), "
            f"rank {self.c3a_rank:>3d}, relative error {self.c3a_error:.3f}, energy {self.c3a_energy:.3f}\n"
            f"  LoRA r={self.r:<3d}{'':31s}{self.lora_parameters:>6,} parameters "
            f"({self.lora_degrees_of_freedom:>6,} degrees of freedom), "
            f"rank {self.lora_rank:>3d}, relative error {self.lora_error:.3f}, energy {self.lora_energy:.3f}"
        )


@one_blas_thread
def explorer_state(
    target: str = "random", b: int = 16, keep: int | None = None, permute: bool = False, d: int = SIZE, seed: int = 0
) -> ExplorerState:
    """Both methods' exact best fits to the target ``target`` at C3A block size ``b`` and LoRA's equal budget.

    ``keep`` (``None``: all ``b``) keeps only C3A's strongest frequency blocks (``strongest_frequencies``), which
    lowers its rank. ``permute`` applies a fixed random permutation (seeded by ``seed``) to the target's columns.
    """
    t = _prepared_target(target, d, seed, permute)
    d_out, d_in = t.shape
    check_block_size(d_in, d_out, b)
    keep = b if keep is None else keep
    kernel = best_c3a_kernel(t, b)
    kept = strongest_frequencies(kernel, keep)
    kept_kernel = keep_frequencies(kernel, kept)
    energy = frequency_energy(kernel)
    total = float(np.sum(t**2))
    r = lora_rank_for_budget(d_out, d_in, b)
    s = np.linalg.svd(t, compute_uv=False)

    # Both fits are orthogonal projections, so ‖T − P T‖² = ‖T‖² − ‖P T‖²: C3A keeps Σ_(f kept) ‖Ŵ_f‖²
    # (the projection keeps b·‖kernel‖² in all), LoRA keeps σ_1² + ... + σ_r².
    def c3a_error(k):
        return float(np.sqrt(max(total - k * np.sum(best_c3a_kernel(t, k) ** 2), 0.0) / total))

    tail = np.sqrt(np.maximum(total - np.cumsum(s**2), 0.0) / total)  # tail[k - 1]: LoRA's error at rank k
    sizes = budget_block_sizes(d_in, d_out)
    ranks = list(range(1, lora_rank_for_budget(d_out, d_in, min(sizes)) + 1))
    lora_errors = [float(tail[min(k, len(s)) - 1]) for k in ranks]
    state = ExplorerState(
        target_name=target,
        b=b,
        r=r,
        keep=len(kept),
        permute=permute,
        target=t,
        c3a=block_circulant(kept_kernel),
        lora=best_lora_update(t, r),
        c3a_parameters=c3a_parameter_count(d_out, d_in, b),
        # A real kernel keeping the frequency set K (closed under f -> -f) has (d_out/b)(d_in/b) real numbers per
        # kept frequency: a self-conjugate f holds a real block, a pair {f, b - f} one complex block between them.
        c3a_degrees_of_freedom=(d_out // b) * (d_in // b) * len(kept),
        lora_parameters=lora_parameter_count(d_out, d_in, r),
        lora_degrees_of_freedom=r * (d_in + d_out - r),
        c3a_rank=block_circulant_rank(kept_kernel),
        lora_rank=int((s[:r] > max(d_in, d_out) * np.finfo(float).eps * s[0]).sum()),
        c3a_error=float(np.sqrt(max(total - energy[kept].sum(), 0.0) / total)),
        lora_error=float(tail[min(r, len(s)) - 1]),
        c3a_error_all_frequencies=c3a_error(b),
        frequency_energy=energy,
        kept_frequencies=kept,
        curve_budgets=[c3a_parameter_count(d_out, d_in, k) for k in sizes],
        curve_c3a=[c3a_error(k) for k in sizes],
        curve_lora_budgets=[lora_parameter_count(d_out, d_in, k) for k in ranks],
        curve_lora=lora_errors,
        spectra={"target": s, "C3A": c3a_singular_values(kept_kernel), "LoRA": s[:r]},
    )
    state.readout = _readout_html(state)
    return state


@one_blas_thread
def rank_options(target: str, b: int, permute: bool = False, d: int = SIZE, seed: int = 0) -> list[tuple[str, int]]:
    """The C3A rank slider's options: ``(label, keep)`` for each distinct set of strongest frequencies.

    The label is the rank of the update built from that set; the last option keeps all ``b`` frequencies.
    """
    kernel = best_c3a_kernel(_prepared_target(target, d, seed, permute), b)
    options, seen = [], set()
    for keep in range(1, b + 1):
        kept = tuple(strongest_frequencies(kernel, keep))
        if kept and kept not in seen:
            seen.add(kept)
            options.append((str(block_circulant_rank(keep_frequencies(kernel, kept))), keep))
    return options


def _readout_html(s: ExplorerState) -> str:
    cell = "padding:2px 14px;text-align:right"
    head = "padding:2px 14px;text-align:right;border-bottom:1px solid #888"
    rows = [
        ("parameters", f"{s.c3a_parameters:,}", f"{s.lora_parameters:,}"),
        ("degrees of freedom of ΔW", f"{s.c3a_degrees_of_freedom:,}", f"{s.lora_degrees_of_freedom:,}"),
        ("rank of ΔW", s.c3a_rank, s.lora_rank),
        ("relative error ‖ΔW − T‖ / ‖T‖", f"{s.c3a_error:.3f}", f"{s.lora_error:.3f}"),
        ("energy captured 1 − error²", f"{s.c3a_energy:.3f}", f"{s.lora_energy:.3f}"),
    ]
    body = "".join(
        f"<tr><td style='padding:2px 14px 2px 0'>{name}</td><td style='{cell}'>{a}</td><td style='{cell}'>{b}</td></tr>"
        for name, a, b in rows
    )
    freq = f", {s.keep} of {s.b} frequencies" if s.keep < s.b else ""
    return (
        f"<b>target: {html.escape(s.target_name)}</b> ({s.target.shape[0]} × {s.target.shape[1]}"
        f"{', inputs permuted' if s.permute else ''}); exact best fits at the same budget"
        "<table style='border-collapse:collapse;margin-top:4px'>"
        f"<tr><th style='{head}'></th><th style='{head}'>C3A, b = {s.b}{freq}</th>"
        f"<th style='{head}'>LoRA, r = {s.r}</th></tr>{body}</table>"
    )


def plot_explorer_state(state: ExplorerState):
    """Six panels: ``T`` and both fits as heat maps; singular values; error vs budget; C3A's energy by frequency."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    limit = np.abs(state.target).max() or 1.0
    for ax, matrix, title in (
        (axes[0, 0], state.target, f"target T: {state.target_name}" + (" (inputs permuted)" if state.permute else "")),
        (axes[0, 1], state.c3a, f"C3A b={state.b}, rank {state.c3a_rank}: error {state.c3a_error:.3f}"),
        (axes[0, 2], state.lora, f"LoRA r={state.r}, rank {state.lora_rank}: error {state.lora_error:.3f}"),
    ):
        ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[1, 0]
    top = state.spectra["target"][0]
    for (name, s), style in zip(state.spectra.items(), ("k-", "C0-", "C1-"), strict=True):
        s = s[s > 1e-12 * top]
        ax.semilogy(np.arange(1, len(s) + 1), s / top, style, lw=1.5, label=f"{name} ({len(s)} non-zero)")
    ax.set_xlabel("index i")
    ax.set_ylabel("σ_i / σ_1(T)")
    ax.set_title("singular values", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1, 1]
    ax.plot(state.curve_budgets, state.curve_c3a, "o-", color="C0", ms=3, label="C3A, best fit per b")
    ax.plot(state.curve_lora_budgets, state.curve_lora, "-", color="C1", label="LoRA, truncated SVD per r")
    ax.plot([state.c3a_parameters], [state.c3a_error], "o", color="C0", ms=10, mfc="none", mew=2)
    ax.plot([state.lora_parameters], [state.lora_error], "s", color="C1", ms=10, mfc="none", mew=2)
    ax.axvline(state.c3a_parameters, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("parameters")
    ax.set_ylabel("relative error ‖ΔW − T‖ / ‖T‖")
    ax.set_title("error against budget (circles: this setting)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 2]
    energy = state.frequency_energy / np.sum(state.target**2)
    kept = np.zeros(state.b, dtype=bool)
    kept[state.kept_frequencies] = True
    f = np.arange(state.b)
    ax.bar(f[kept], energy[kept], color="C0")
    ax.bar(f[~kept], energy[~kept], color="lightgrey")
    ax.set_xlabel("frequency f")
    ax.set_ylabel("‖Ŵ_f‖² / ‖T‖²")
    ax.set_title(f"C3A's energy by frequency: {state.keep} of {state.b} kept", fontsize=10)
    # Legend entries drawn from explicit patches: a bar container with no bars (nothing zeroed) has no colour.
    ax.legend(handles=[Patch(color="C0", label="kept"), Patch(color="lightgrey", label="zeroed")], fontsize=8)
    return fig


def rank_parameter_explorer(target: str = REAL, b: int = 16, d: int = SIZE):
    """The explorer widget: a target menu, a budget slider, a C3A rank slider and a 'permute inputs' toggle."""
    import ipywidgets as widgets

    make_target(target, d)  # a clear error for an unknown target before any widget exists
    check_block_size(d, d, b)

    def budget_label(k):
        return f"{c3a_parameter_count(d, d, k):,} (b={k}, r={lora_rank_for_budget(d, d, k)})"

    target_menu = widgets.Dropdown(options=list(TARGETS), value=target, description="target")
    budget = widgets.SelectionSlider(
        options=[(budget_label(k), k) for k in budget_block_sizes(d, d)], value=b, description="budget",
        continuous_update=False,
    )  # fmt: skip
    budget.layout.width = "480px"
    rank = widgets.SelectionSlider(
        options=rank_options(target, b, d=d), description="C3A rank", continuous_update=False
    )
    rank.value = rank.options[-1][1]
    rank.layout.width = "480px"
    permute = widgets.ToggleButton(value=False, description="permute inputs", tooltip="shuffle T's columns")
    readout = widgets.HTML()
    readout.add_class("c3a-readout")
    figure = widgets.Output()
    figure.add_class("c3a-figure")
    busy = [False]  # set while the rank options change, so that the intermediate values do not redraw

    def refresh(*_):
        if busy[0]:
            return
        state = explorer_state(target_menu.value, budget.value, rank.value, permute.value, d)
        readout.value = state.readout
        viz.show_figure(figure, plot_explorer_state(state))

    def fit_changed(*_):
        busy[0] = True
        try:
            rank.options = rank_options(target_menu.value, budget.value, permute.value, d)
            rank.value = rank.options[-1][1]  # all frequencies: the best C3A fit at this budget
        finally:
            busy[0] = False
        refresh()

    for control in (target_menu, budget, permute):
        control.observe(fit_changed, names="value")
    rank.observe(refresh, names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([target_menu, permute]), budget, rank, readout, figure])
    box.add_class("c3a-explorer")
    return box
