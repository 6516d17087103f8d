"""The pure functions behind the widgets of notebooks 01 and 03, and the widgets' wiring."""

import numpy as np
import pytest
import scipy.linalg

from c3a_tutorial import block_circulant, matrix_rank
from c3a_tutorial.course import viz


@pytest.mark.parametrize("n", [2, 3, 5, 8, 12])
@pytest.mark.parametrize("name", list(viz.PRESET_KERNELS))
def test_circulant_view_rank_is_number_of_nonzero_dft_coefficients(n, name):
    view = viz.circulant_view(n, name)
    assert np.allclose(view.matrix, scipy.linalg.circulant(view.kernel))
    assert view.rank == np.linalg.matrix_rank(view.matrix) == int(view.nonzero.sum())
    assert f"rank(C) = <b>{view.rank}</b>" in view.readout


def test_circulant_view_eigenvalues_are_the_spectrum():
    view = viz.circulant_view(7, "random")
    eig = np.linalg.eigvals(view.matrix)
    # Every fft coefficient is an eigenvalue (match each to its nearest).
    assert np.abs(eig[:, None] - view.spectrum[None, :]).min(axis=0).max() < 1e-10


def test_circulant_view_known_ranks_and_readout():
    assert viz.circulant_view(8, "constant [1, 1, ...] (rank 1)").rank == 1
    assert viz.circulant_view(8, "cosine (rank 2)").rank == 2
    assert viz.circulant_view(8, "low-pass (3 frequencies)").rank == 3
    assert viz.circulant_view(8, "difference [1, -1, 0, ...]").rank == 7
    assert viz.circulant_view(9, "moving average [1, 1, 1, 0, ...]/3").rank == 7  # 3 | 9: two zeros
    assert viz.circulant_view(8, "moving average [1, 1, 1, 0, ...]/3").rank == 8
    view = viz.circulant_view(8, "low-pass (3 frequencies)")
    assert "<b>3</b> of 8" in view.readout and "k = [2, 3, 4, 5, 6]" in view.readout
    assert (
        viz.circulant_view(6, "identity [1, 0, 0, ...]").readout
        != viz.circulant_view(7, "identity [1, 0, 0, ...]").readout
    )


def test_preset_kernel_rejects_bad_input():
    with pytest.raises(ValueError, match="Unknown kernel 'nope'; choose one of"):
        viz.preset_kernel("nope", 8)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        viz.preset_kernel("random", 1)


def test_plots_draw():
    fig = viz.plot_circulant_view(viz.circulant_view(6, "random"))
    assert len(fig.axes) == 3  # matrix, its colour bar, spectrum
    png = viz.figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    fig = viz.plot_circulants([[1, 2, 3], [0, 1, 0]], ["a", "b"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]


def _find(box, cls):
    found = []
    for child in getattr(box, "children", ()):
        if isinstance(child, cls):
            found.append(child)
        found.extend(_find(child, cls))
    return found


def test_circulant_widget_updates_readout_and_figure():
    import ipywidgets as widgets

    box = viz.circulant_widget(n=8, kernel="low-pass (3 frequencies)")
    assert "c3a-circulant-widget" in box._dom_classes
    (slider,) = _find(box, widgets.IntSlider)
    (menu,) = _find(box, widgets.Dropdown)
    (readout,) = _find(box, widgets.HTML)
    assert (slider.description, menu.description) == ("n", "kernel")
    assert "c3a-readout" in readout._dom_classes
    assert "rank(C) = <b>3</b>" in readout.value
    menu.value = "random"
    assert "rank(C) = <b>8</b>" in readout.value
    slider.value = 5
    assert "<b>n = 5</b>" in readout.value and "rank(C) = <b>5</b>" in readout.value


def test_plot_block_structure_and_fit_errors():
    fig = viz.plot_block_structure(np.random.default_rng(0).standard_normal((2, 3, 4)))
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (8, 12)
    assert np.allclose(image, block_circulant(np.random.default_rng(0).standard_normal((2, 3, 4))))
    errors = {"a": {"c3a": [0.5, 0.4], "lora": [0.6, 0.1]}, "b": {"c3a": [0.9, 0.8], "lora": [0.7, 0.2]}}
    fig = viz.plot_fit_errors(errors, [256, 512])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    assert list(fig.axes[1].lines[1].get_ydata()) == [0.7, 0.2]


def test_circulant_widget_redraws_the_figure_when_the_slider_moves(monkeypatch):
    import ipywidgets as widgets

    drawn = []
    monkeypatch.setattr(viz, "show_figure", lambda output, fig: drawn.append(viz.figure_png(fig)))
    box = viz.circulant_widget(n=6, kernel="random")
    (n,) = _find(box, widgets.IntSlider)
    n.value = 7
    assert len(drawn) == 2 and drawn[1] != drawn[0]


def test_circulant_view_uses_matrix_rank_s_one_tolerance():
    # The non-zero mask and the rank use one rule (n·eps relative to the largest |fft(c)|), so they agree even
    # for a coefficient far below 1e-9 of the largest, which an absolute 1e-9 cut would have called zero.
    view = viz.circulant_view(8, "random")
    assert view.rank == int(view.nonzero.sum()) == 8
    spectrum = np.ones(8)
    spectrum[3] = spectrum[5] = 1e-11
    c = np.fft.ifft(spectrum).real
    assert matrix_rank(scipy.linalg.circulant(c)) == 8


def test_plot_frequency_block_diagonal_shows_the_permuted_matrix():
    from c3a_tutorial.course.spectral import frequency_block_diagonal

    kernel = np.random.default_rng(0).standard_normal((2, 3, 4))
    fig = viz.plot_frequency_block_diagonal(kernel)
    left, right = fig.axes[0].images[0].get_array(), fig.axes[1].images[0].get_array()
    assert np.allclose(left, np.abs(block_circulant(kernel)))
    assert np.allclose(right, np.abs(frequency_block_diagonal(kernel)))
    assert len(fig.axes[1].patches) == 4


def test_widget_builder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Unknown kernel"):
        viz.circulant_widget(kernel="nope")


def test_moving_average_is_singular_exactly_when_3_divides_n():
    """Notebook 01's claim (section 5, Exercise 1, Question 1): the moving average of three samples is singular
    exactly when 3 divides n, at every n the widget offers (2 to 32) and beyond. At n = 2 the three samples wrap
    onto two, (2, 1)/3; a preset that became [1/2, 1/2] there was singular at n = 2 and broke the claim."""
    name = "moving average [1, 1, 1, 0, ...]/3"
    np.testing.assert_allclose(viz.preset_kernel(name, 2), [2 / 3, 1 / 3])
    for n in range(2, 65):
        view = viz.circulant_view(n, name)
        assert (view.rank < n) == (n % 3 == 0), f"n = {n}: rank {view.rank}"
        x = np.random.default_rng(n).standard_normal(n)  # C x is the circular mean of x_i, x_(i-1), x_(i-2)
        np.testing.assert_allclose(view.matrix @ x, (x + np.roll(x, 1) + np.roll(x, 2)) / 3, atol=1e-12)
