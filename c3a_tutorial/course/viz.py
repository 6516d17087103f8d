"""Plots and the two interactive widgets of notebooks 01 and 03.

Every widget here is thin wiring. What a widget *shows* is computed by a pure function that the unit
tests call directly:

* ``circulant_view(n, kernel)`` → the matrix, its DFT spectrum, its rank and the read-out text of
  notebook 01's widget, ``circulant_widget()``;
* ``explorer_state(d_in, d_out, b, r, same_budget)`` → parameter counts, maximal and numerical ranks,
  singular values of a random C3A ``ΔW`` and a random LoRA ``ΔW``, and the read-out text of notebook 03's
  rank/parameter explorer, ``rank_parameter_explorer()``.

The widgets use core ipywidgets 8 only and draw figures as PNG images inside an ``Output`` widget, so they
work in JupyterLab, Notebook 7 and Colab alike. CSS classes (``c3a-readout``, ``c3a-figure``,
``c3a-explorer``, ``c3a-circulant-widget``) let a browser test find them.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field

import numpy as np

from ..c3a.block_circulant import block_circulant
from ..c3a.circulant import circulant
from ..c3a.counting import (
    c3a_max_rank,
    c3a_parameter_count,
    check_block_size,
    lora_max_rank,
    lora_parameter_count,
    lora_rank_for_budget,
    nearest_block_size,
    valid_block_sizes,
)

# ---------------------------------------------------------------------------------------------------------
# Notebook 01: one circulant, its spectrum and its rank
# ---------------------------------------------------------------------------------------------------------


def _low_pass(n: int, keep: int) -> np.ndarray:
    # A real kernel whose spectrum is non-zero at frequencies 0, ±1, ..., ±keep only: rank 2·keep + 1.
    spectrum = np.zeros(n // 2 + 1)
    spectrum[: keep + 1] = 1.0
    return np.fft.irfft(spectrum, n=n)


# name -> (n -> kernel). Each preset teaches something about rank = number of non-zero DFT coefficients.
PRESET_KERNELS = {
    "random": lambda n: np.random.default_rng(0).standard_normal(n),
    "identity [1, 0, 0, ...]": lambda n: np.eye(n)[0],
    "shift [0, 1, 0, ...]": lambda n: np.eye(n)[1 % n],
    "constant [1, 1, ...] (rank 1)": lambda n: np.ones(n),
    "cosine (rank 2)": lambda n: np.cos(2 * np.pi * np.arange(n) / n),
    "low-pass (3 frequencies)": lambda n: _low_pass(n, 1),
    "difference [1, -1, 0, ...]": lambda n: np.eye(n)[0] - np.eye(n)[1 % n],
    "moving average [1, 1, 1, 0, ...]/3": lambda n: (
        np.convolve(np.ones(3), np.eye(n)[0])[:n] / 3 if n >= 3 else np.ones(n) / n
    ),
}


def preset_kernel(name: str, n: int) -> np.ndarray:
    """The preset kernel ``name`` (a key of ``PRESET_KERNELS``) of length ``n``."""
    if name not in PRESET_KERNELS:
        raise ValueError(f"Unknown kernel {name!r}; choose one of {list(PRESET_KERNELS)}.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}.")
    return np.asarray(PRESET_KERNELS[name](int(n)), dtype=float)


@dataclass
class CirculantView:
    """Everything notebook 01's widget shows for one kernel."""

    name: str
    kernel: np.ndarray
    matrix: np.ndarray
    spectrum: np.ndarray  # fft(kernel): the eigenvalues
    nonzero: np.ndarray  # bool mask of the non-zero DFT coefficients
    rank: int  # np.linalg.matrix_rank(matrix)
    readout: str  # HTML

    @property
    def n(self) -> int:
        return len(self.kernel)


def circulant_view(n: int, kernel: str = "random", tol: float = 1e-9) -> CirculantView:
    """The circulant of the preset ``kernel`` of length ``n``, its spectrum, its rank and a read-out.

    ``tol`` is relative to the largest ``|fft(c)|``: smaller coefficients count as zero.
    """
    c = preset_kernel(kernel, n)
    matrix = circulant(c)
    spectrum = np.fft.fft(c)
    scale = np.abs(spectrum).max()
    nonzero = np.abs(spectrum) > tol * scale if scale > 0 else np.zeros(n, dtype=bool)
    rank = int(np.linalg.matrix_rank(matrix))
    zero_freqs = [int(k) for k in np.flatnonzero(~nonzero)]
    readout = (
        f"<b>n = {n}</b>, kernel: {html.escape(kernel)}<br>"
        f"non-zero DFT coefficients: <b>{int(nonzero.sum())}</b> of {n}"
        f" (zero at k = {zero_freqs if zero_freqs else 'none'})<br>"
        f"rank(C) = <b>{rank}</b> (np.linalg.matrix_rank)"
    )
    return CirculantView(kernel, c, matrix, spectrum, nonzero, rank, readout)


def plot_circulant_view(view: CirculantView):
    """Two panels: the matrix as a heat map, and ``|fft(c)|`` with the zero coefficients marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_m, ax_s = fig.subplots(1, 2, width_ratios=[1, 1.4])
    limit = np.abs(view.matrix).max() or 1.0
    image = ax_m.imshow(view.matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax_m.set_title(f"C = circulant(c), n = {view.n}")
    ax_m.set_xlabel("column j")
    ax_m.set_ylabel("row i")
    fig.colorbar(image, ax=ax_m, shrink=0.8)
    k = np.arange(view.n)
    magnitude = np.abs(view.spectrum)
    ax_s.bar(k[view.nonzero], magnitude[view.nonzero], color="tab:blue", label="non-zero")
    ax_s.plot(k[~view.nonzero], np.zeros((~view.nonzero).sum()), "x", color="tab:red", ms=9, label="zero")
    ax_s.set_title(f"|fft(c)| = |eigenvalues|: rank = {view.rank}")
    ax_s.set_xlabel("frequency k")
    ax_s.legend(loc="upper right", fontsize=8)
    return fig


def plot_circulants(kernels, titles=None):
    """Heat maps of ``circulant(c)`` for a few kernels side by side."""
    import matplotlib.pyplot as plt

    kernels = [np.asarray(c, dtype=float) for c in kernels]
    fig, axes = plt.subplots(1, len(kernels), figsize=(3.2 * len(kernels), 3.2), layout="constrained")
    for i, (ax, c) in enumerate(zip(np.atleast_1d(axes), kernels, strict=True)):
        limit = np.abs(c).max() or 1.0
        ax.imshow(circulant(c), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(titles[i] if titles else f"kernel {i}")
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


# ---------------------------------------------------------------------------------------------------------
# Notebook 03: the rank/parameter explorer
# ---------------------------------------------------------------------------------------------------------


def c3a_singular_values(kernel: np.ndarray) -> np.ndarray:
    """Singular values of ``block_circulant(kernel)``, largest first, from its ``b`` frequency blocks.

    The DFT (made unitary) turns the block-circulant matrix into ``b`` independent ``(d_out/b) × (d_in/b)``
    blocks ``fft(kernel)[:, :, f]``; the singular values are theirs, pooled. Far cheaper than a dense SVD.
    """
    spectra = np.fft.fft(np.asarray(kernel, dtype=float), axis=-1).transpose(2, 0, 1)
    return np.sort(np.linalg.svd(spectra, compute_uv=False).ravel())[::-1]


def lora_singular_values(B: np.ndarray, A: np.ndarray) -> np.ndarray:
    """All ``min(d_out, d_in)`` singular values of ``B @ A``, largest first (zeros beyond the rank).

    ``B A = Q_B R_B R_Aᵀ Q_Aᵀ`` with orthonormal ``Q``s, so only the small ``R_B R_Aᵀ`` needs an SVD.
    """
    _, r_b = np.linalg.qr(B)
    _, r_a = np.linalg.qr(A.T)
    s = np.linalg.svd(r_b @ r_a.T, compute_uv=False)
    full = np.zeros(min(B.shape[0], A.shape[1]))
    full[: min(len(s), len(full))] = np.sort(s)[::-1][: len(full)]
    return full


def _numerical_rank(s: np.ndarray, size: int) -> int:
    # NumPy's matrix_rank rule: singular values above max(shape) · eps · σ_max.
    return int((s > size * np.finfo(float).eps * s[0]).sum()) if len(s) and s[0] > 0 else 0


@dataclass
class ExplorerState:
    """Everything the rank/parameter explorer shows for one setting."""

    d_in: int
    d_out: int
    b: int
    r: int  # the LoRA rank compared (the budget rank in same-budget mode)
    same_budget: bool
    budget_rank: int  # the largest LoRA rank with no more parameters than C3A at this b
    c3a_parameters: int
    lora_parameters: int
    c3a_max_rank: int
    lora_max_rank: int
    c3a_rank: int  # numerical rank of a random C3A ΔW
    lora_rank: int  # numerical rank of a random LoRA ΔW
    c3a_singular_values: np.ndarray = field(repr=False)
    lora_singular_values: np.ndarray = field(repr=False)
    readout: str = field(repr=False, default="")

    def summary(self) -> str:
        """Plain-text version of the read-out, for printing in a notebook."""
        return (
            f"d_out x d_in = {self.d_out} x {self.d_in}, b = {self.b}, r = {self.r}"
            f"{' (same budget)' if self.same_budget else ''}\n"
            f"  C3A : {self.c3a_parameters:>9,} parameters, max rank {self.c3a_max_rank:>5}, "
            f"random ΔW rank {self.c3a_rank}\n"
            f"  LoRA: {self.lora_parameters:>9,} parameters, max rank {self.lora_max_rank:>5}, "
            f"random ΔW rank {self.lora_rank}\n"
            f"  same-budget LoRA rank at b = {self.b}: r = {self.budget_rank}"
        )


def explorer_state(d_in: int, d_out: int, b: int, r: int, same_budget: bool = False, seed: int = 0) -> ExplorerState:
    """Counts, ranks and singular values of random C3A and LoRA updates for one explorer setting.

    ``b`` must divide ``d_in`` and ``d_out`` (the error lists the valid ones). In ``same_budget`` mode
    ``r`` is ignored and LoRA gets ``lora_rank_for_budget(d_out, d_in, b)``. The random ``ΔW``s use
    standard normal kernels / factors drawn with ``seed``.
    """
    check_block_size(d_in, d_out, b)
    budget_rank = lora_rank_for_budget(d_out, d_in, b)
    r = budget_rank if same_budget else r
    c3a_params = c3a_parameter_count(d_out, d_in, b)
    lora_params = lora_parameter_count(d_out, d_in, r)
    rng = np.random.default_rng(seed)
    s_c3a = c3a_singular_values(rng.standard_normal((d_out // b, d_in // b, b)))
    s_lora = lora_singular_values(rng.standard_normal((d_out, r)), rng.standard_normal((r, d_in)))
    size = max(d_in, d_out)
    state = ExplorerState(
        d_in=d_in,
        d_out=d_out,
        b=b,
        r=r,
        same_budget=same_budget,
        budget_rank=budget_rank,
        c3a_parameters=c3a_params,
        lora_parameters=lora_params,
        c3a_max_rank=c3a_max_rank(d_out, d_in, b),
        lora_max_rank=lora_max_rank(d_out, d_in, r),
        c3a_rank=_numerical_rank(s_c3a, size),
        lora_rank=_numerical_rank(s_lora, size),
        c3a_singular_values=s_c3a,
        lora_singular_values=s_lora,
    )
    state.readout = _explorer_html(state)
    return state


def _explorer_html(s: ExplorerState) -> str:
    mode = " &mdash; <i>same parameter budget</i>" if s.same_budget else ""
    row = "<tr><td>{}</td><td style='text-align:right'>{}</td><td style='text-align:right'>{}</td></tr>"
    return (
        f"<b>ΔW: d_out × d_in = {s.d_out} × {s.d_in}</b>{mode}"
        "<table style='border-collapse:collapse'>"
        f"<tr><th></th><th>C3A, b = {s.b}</th><th>LoRA, r = {s.r}</th></tr>"
        + row.format("parameters", f"{s.c3a_parameters:,}", f"{s.lora_parameters:,}")
        + row.format("max rank", s.c3a_max_rank, s.lora_max_rank)
        + row.format("numerical rank of a random ΔW", s.c3a_rank, s.lora_rank)
        + "</table>"
        f"same-budget LoRA rank at b = {s.b}: <b>r = {s.budget_rank}</b> "
        f"({lora_parameter_count(s.d_out, s.d_in, s.budget_rank):,} parameters)"
    )


def plot_explorer_state(state: ExplorerState):
    """Normalised singular values ``σ_i / σ_1`` of the random C3A and LoRA ``ΔW`` (log scale)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.subplots()
    floor = 1e-17  # exact zeros cannot sit on a log axis: draw them at the floor
    for s, label, color in (
        (state.c3a_singular_values, f"C3A b={state.b} ({state.c3a_parameters:,} params)", "tab:blue"),
        (state.lora_singular_values, f"LoRA r={state.r} ({state.lora_parameters:,} params)", "tab:orange"),
    ):
        i = np.arange(1, len(s) + 1)
        ax.semilogy(i, np.maximum(s / s[0], floor), color=color, label=label)
    ax.axvline(state.lora_rank, color="tab:orange", ls=":", lw=1)
    ax.set_ylim(floor / 3, 3)
    ax.set_xlabel("index i")
    ax.set_ylabel("σ_i / σ_1")
    ax.set_title(f"Singular values of a random ΔW ({state.d_out} × {state.d_in}); zeros drawn at {floor:g}")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_block_structure(kernel):
    """``block_circulant(kernel)`` as a heat map with the ``b × b`` block grid drawn on top."""
    import matplotlib.pyplot as plt

    kernel = np.asarray(kernel, dtype=float)
    m, n, b = kernel.shape
    dense = block_circulant(kernel)
    limit = np.abs(dense).max() or 1.0
    fig, ax = plt.subplots(figsize=(1.2 + 0.32 * n * b, 0.8 + 0.32 * m * b), layout="constrained")
    ax.imshow(dense, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for k in range(1, n):
        ax.axvline(k * b - 0.5, color="black", lw=2)
    for k in range(1, m):
        ax.axhline(k * b - 0.5, color="black", lw=2)
    ax.set_title(f"ΔW = block_circulant(w): d_out × d_in = {m * b} × {n * b}, b = {b}")
    ax.set_xlabel("input feature (d_in)")
    ax.set_ylabel("output feature (d_out)")
    return fig


def plot_fit_errors(errors: dict, budgets):
    """One panel per target: relative error against parameter budget, for C3A and LoRA.

    ``errors[target][method]`` is a list of relative errors, one per entry of ``budgets``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(errors), figsize=(3.3 * len(errors), 3.3), layout="constrained", sharey=True)
    for ax, (target, by_method) in zip(np.atleast_1d(axes), errors.items(), strict=True):
        for method, style in (("c3a", "o-"), ("lora", "s--")):
            ax.plot(budgets, by_method[method], style, label={"c3a": "C3A", "lora": "LoRA"}[method])
        ax.set_xscale("log", base=2)
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("parameters")
    np.atleast_1d(axes)[0].set_ylabel("relative error ‖ΔW − T‖ / ‖T‖")
    np.atleast_1d(axes)[0].legend()
    return fig


# ---------------------------------------------------------------------------------------------------------
# Widgets: wiring only
# ---------------------------------------------------------------------------------------------------------


def figure_png(fig) -> bytes:
    """A figure as PNG bytes (what the widgets display)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _show(output, fig) -> None:
    from IPython.display import Image, display

    with output:
        output.clear_output(wait=True)
        display(Image(figure_png(fig)))


def circulant_widget(n: int = 8, kernel: str = "low-pass (3 frequencies)"):
    """Notebook 01's widget: pick ``n`` and a kernel, see the circulant, its spectrum and its rank."""
    import ipywidgets as widgets

    preset_kernel(kernel, n)  # a clear error for an unknown kernel or a bad n, before any widget exists
    n_slider = widgets.IntSlider(value=n, min=2, max=max(32, n), step=1, description="n", continuous_update=False)
    kernel_menu = widgets.Dropdown(options=list(PRESET_KERNELS), value=kernel, description="kernel")
    kernel_menu.layout.width = "360px"
    readout = widgets.HTML()
    readout.add_class("c3a-readout")
    figure = widgets.Output()
    figure.add_class("c3a-figure")

    def refresh(*_):
        view = circulant_view(n_slider.value, kernel_menu.value)
        readout.value = view.readout
        _show(figure, plot_circulant_view(view))

    n_slider.observe(refresh, names="value")
    kernel_menu.observe(refresh, names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([n_slider, kernel_menu]), readout, figure])
    box.add_class("c3a-circulant-widget")
    return box


def rank_parameter_explorer(d_in: int = 768, d_out: int = 768, b: int = 64, r: int = 8):
    """Notebook 03's explorer: sliders for ``d_in``, ``d_out``, ``b`` (valid divisors only) and ``r``."""
    import ipywidgets as widgets

    check_block_size(d_in, d_out, b)
    # Slider range: 32..1024 in steps of 32, widened to include the shape asked for (never silently clamped).
    common = {"min": min(32, d_in, d_out), "max": max(1024, d_in, d_out), "step": 32, "continuous_update": False}
    d_in_slider = widgets.IntSlider(value=d_in, description="d_in", **common)
    d_out_slider = widgets.IntSlider(value=d_out, description="d_out", **common)
    b_slider = widgets.SelectionSlider(
        options=valid_block_sizes(d_in, d_out), value=b, description="b", continuous_update=False
    )
    r_slider = widgets.IntSlider(value=r, min=1, max=64, description="r", continuous_update=False)
    same_budget = widgets.ToggleButton(value=False, description="same budget", tooltip="LoRA rank matching b")
    readout = widgets.HTML()
    readout.add_class("c3a-readout")
    figure = widgets.Output()
    figure.add_class("c3a-figure")
    busy = [False]  # set while we change b's options, so that the intermediate values do not redraw

    def refresh(*_):
        if busy[0]:
            return
        r_slider.disabled = same_budget.value
        state = explorer_state(d_in_slider.value, d_out_slider.value, b_slider.value, r_slider.value, same_budget.value)
        readout.value = state.readout
        _show(figure, plot_explorer_state(state))

    def shape_changed(*_):
        d_i, d_o = d_in_slider.value, d_out_slider.value
        previous = b_slider.value  # read before the options change: that resets the value
        busy[0] = True
        try:
            b_slider.options = valid_block_sizes(d_i, d_o)
            b_slider.value = nearest_block_size(d_i, d_o, previous)
        finally:
            busy[0] = False
        refresh()

    d_in_slider.observe(shape_changed, names="value")
    d_out_slider.observe(shape_changed, names="value")
    for control in (b_slider, r_slider, same_budget):
        control.observe(refresh, names="value")
    refresh()
    box = widgets.VBox(
        [widgets.HBox([d_in_slider, d_out_slider]), widgets.HBox([b_slider, r_slider, same_budget]), readout, figure]
    )
    box.add_class("c3a-explorer")
    return box
