"""The pure functions behind the widgets of notebooks 01 and 03, and the widgets' wiring."""

import numpy as np
import pytest
import scipy.linalg

from c3a_tutorial import block_circulant, lora_parameter_count, valid_block_sizes
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


def test_c3a_singular_values_match_dense_svd():
    kernel = np.random.default_rng(0).standard_normal((3, 5, 4))
    dense = np.linalg.svd(block_circulant(kernel), compute_uv=False)
    assert np.allclose(viz.c3a_singular_values(kernel), dense)


@pytest.mark.parametrize("shape", [(20, 3, 12), (6, 9, 4), (5, 2, 7)])
def test_lora_singular_values_match_dense_svd(shape):
    d_out, r, d_in = shape
    rng = np.random.default_rng(1)
    B, A = rng.standard_normal((d_out, r)), rng.standard_normal((r, d_in))
    got = viz.lora_singular_values(B, A)
    assert got.shape == (min(d_out, d_in),)
    assert np.allclose(got, np.linalg.svd(B @ A, compute_uv=False), atol=1e-9)


def test_explorer_state_counts_and_ranks():
    s = viz.explorer_state(768, 768, 64, 8)
    assert (s.c3a_parameters, s.lora_parameters) == (768 * 768 // 64, 8 * (768 + 768))
    assert (s.c3a_max_rank, s.lora_max_rank) == (768, 8)
    assert (s.c3a_rank, s.lora_rank) == (768, 8)  # random updates reach their maximal rank
    assert s.budget_rank == 6  # 9216 // 1536
    assert len(s.c3a_singular_values) == len(s.lora_singular_values) == 768
    assert np.all(np.diff(s.c3a_singular_values) <= 0)
    assert "9,216" in s.readout and "12,288" in s.readout and "r = 6" in s.readout
    assert "C3A :     9,216 parameters" in s.summary()


def test_explorer_state_same_budget_uses_the_budget_rank():
    s = viz.explorer_state(768, 3072, 128, 32, same_budget=True)
    assert s.r == s.budget_rank == 768 * 3072 // 128 // (768 + 3072)
    assert s.lora_parameters <= s.c3a_parameters < lora_parameter_count(3072, 768, s.r + 1)
    assert "same parameter budget" in s.readout
    assert viz.explorer_state(768, 3072, 128, 32).r == 32


def test_explorer_state_rejects_invalid_block_size():
    with pytest.raises(ValueError, match="Valid block sizes"):
        viz.explorer_state(96, 64, 5, 4)


def test_nearest_block_size():
    assert viz.nearest_block_size(96, 768, 64) == 48
    assert viz.nearest_block_size(768, 768, 64) == 64
    assert viz.nearest_block_size(100, 10, 7) in valid_block_sizes(100, 10)


def test_plots_draw():
    fig = viz.plot_circulant_view(viz.circulant_view(6, "random"))
    assert len(fig.axes) == 3  # matrix, its colour bar, spectrum
    png = viz.figure_png(viz.plot_explorer_state(viz.explorer_state(64, 32, 8, 2)))
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


def test_explorer_widget_offers_only_valid_block_sizes():
    import ipywidgets as widgets

    box = viz.rank_parameter_explorer()
    assert "c3a-explorer" in box._dom_classes
    d_in, d_out, r = _find(box, widgets.IntSlider)
    (b,) = _find(box, widgets.SelectionSlider)
    (toggle,) = _find(box, widgets.ToggleButton)
    (readout,) = _find(box, widgets.HTML)
    (figure,) = _find(box, widgets.Output)
    assert [w.description for w in (d_in, d_out, b, r)] == ["d_in", "d_out", "b", "r"]
    assert "c3a-figure" in figure._dom_classes and "c3a-readout" in readout._dom_classes
    assert list(b.options) == valid_block_sizes(768, 768)
    before = readout.value
    d_in.value = 96
    assert list(b.options) == valid_block_sizes(96, 768) and b.value == 48
    assert readout.value != before and "768 × 96" in readout.value
    toggle.value = True
    assert r.disabled and "same parameter budget" in readout.value
    b.value = 96
    assert "C3A, b = 96" in readout.value


def test_plot_block_structure_and_fit_errors():
    fig = viz.plot_block_structure(np.random.default_rng(0).standard_normal((2, 3, 4)))
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (8, 12)
    assert np.allclose(image, block_circulant(np.random.default_rng(0).standard_normal((2, 3, 4))))
    errors = {"a": {"c3a": [0.5, 0.4], "lora": [0.6, 0.1]}, "b": {"c3a": [0.9, 0.8], "lora": [0.7, 0.2]}}
    fig = viz.plot_fit_errors(errors, [256, 512])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    assert list(fig.axes[1].lines[1].get_ydata()) == [0.7, 0.2]


def test_widgets_redraw_the_figure_when_a_slider_moves(monkeypatch):
    import ipywidgets as widgets

    drawn = []
    monkeypatch.setattr(viz, "_show", lambda output, fig: drawn.append(viz.figure_png(fig)))
    box = viz.rank_parameter_explorer(d_in=256, d_out=128, b=32, r=4)
    (r,) = [s for s in _find(box, widgets.IntSlider) if s.description == "r"]
    assert len(drawn) == 1
    r.value = 8
    assert len(drawn) == 2 and drawn[1] != drawn[0]
    box = viz.circulant_widget(n=6, kernel="random")
    (n,) = _find(box, widgets.IntSlider)
    n.value = 7
    assert len(drawn) == 4 and drawn[3] != drawn[2]


def test_widget_builders_reject_bad_arguments_and_keep_the_shape():
    import ipywidgets as widgets

    with pytest.raises(ValueError, match="Unknown kernel"):
        viz.circulant_widget(kernel="nope")
    with pytest.raises(ValueError, match="Valid block sizes"):
        viz.rank_parameter_explorer(d_in=768, d_out=768, b=100)
    box = viz.rank_parameter_explorer(d_in=3072, d_out=768, b=128, r=4)
    d_in = _find(box, widgets.IntSlider)[0]
    assert d_in.value == 3072 and "768 × 3072" in _find(box, widgets.HTML)[0].value
