"""Plots of notebooks 01 and 03, notebook 01's widget, and what every widget shares.

Every widget is thin wiring. What a widget *shows* is computed by a pure function that the unit tests call
directly: ``circulant_view(n, kernel)`` → the matrix, its DFT spectrum, its rank and the read-out text of
notebook 01's widget, ``circulant_widget()``. Notebook 03's rank/parameter explorer lives in ``explorer.py``
(its pure function is ``explorer_state``).

The widgets use core ipywidgets 8 only and draw figures as PNG images inside an ``Output`` widget, so they
work in JupyterLab, Notebook 7 and Colab alike. CSS classes (``c3a-readout``, ``c3a-figure``,
``c3a-explorer``, ``c3a-circulant-widget``) let a browser test find them.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass

import numpy as np

from ..c3a.block_circulant import block_circulant
from ..c3a.circulant import circulant
from ..c3a.counting import matrix_rank
from .spectral import frequency_block_diagonal

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
    # The circular mean of three neighbours at every n: at n = 2 the three samples wrap onto two, (2, 1)/3, so the
    # circulant is singular exactly when 3 divides n (a plain [1/2, 1/2] there would be singular at n = 2 as well).
    "moving average [1, 1, 1, 0, ...]/3": lambda n: np.bincount(np.arange(3) % n, minlength=n) / 3,
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
    rank: int  # matrix_rank(matrix), NumPy's rule
    readout: str  # HTML

    @property
    def n(self) -> int:
        return len(self.kernel)


def circulant_view(n: int, kernel: str = "random", tol: float | None = None) -> CirculantView:
    """The circulant of the preset ``kernel`` of length ``n``, its spectrum, its rank and a read-out.

    ``tol`` is relative to the largest ``|fft(c)|``: smaller coefficients count as zero. Its default is the one
    tolerance ``matrix_rank`` uses, ``n · eps``: the singular values of a circulant are ``|fft(c)|``, so the
    count of non-zero coefficients and the rank then agree by construction.
    """
    c = preset_kernel(kernel, n)
    matrix = circulant(c)
    spectrum = np.fft.fft(c)
    tol = n * np.finfo(float).eps if tol is None else tol
    scale = np.abs(spectrum).max()
    nonzero = np.abs(spectrum) > tol * scale if scale > 0 else np.zeros(n, dtype=bool)
    rank = matrix_rank(matrix, rtol=tol)
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


def plot_frequency_block_diagonal(kernel):
    """``|ΔW|`` beside ``|P (I ⊗ F) ΔW (I ⊗ F⁻¹) Pᵀ|`` (``frequency_block_diagonal``), its ``b`` blocks framed."""
    import matplotlib.pyplot as plt

    kernel = np.asarray(kernel, dtype=float)
    m, n, b = kernel.shape
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
    for ax, matrix, title in (
        (axes[0], block_circulant(kernel), "|ΔW| (blocks in space)"),
        (axes[1], frequency_block_diagonal(kernel), f"|P (I⊗F) ΔW (I⊗F⁻¹) Pᵀ|: {b} frequency blocks"),
    ):
        image = ax.imshow(np.abs(matrix), cmap="viridis")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        fig.colorbar(image, ax=ax, shrink=0.75)
    for f in range(b):
        axes[1].add_patch(plt.Rectangle((f * n - 0.5, f * m - 0.5), n, m, fill=False, ec="white", lw=1.5))
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


def show_figure(output, fig) -> None:
    """Replace what the ``Output`` widget ``output`` shows by ``fig`` as a PNG image."""
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
        show_figure(figure, plot_circulant_view(view))

    n_slider.observe(refresh, names="value")
    kernel_menu.observe(refresh, names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([n_slider, kernel_menu]), readout, figure])
    box.add_class("c3a-circulant-widget")
    return box
