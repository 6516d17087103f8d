"""Notebook 03's explorer: its pure function, its figure and its wiring."""

import numpy as np
import pytest

from c3a_tutorial.course import explorer, fitting, viz
from c3a_tutorial.course.real_update import load_real_update


@pytest.mark.parametrize("name", explorer.TARGETS)
def test_targets_are_unit_norm_and_of_the_right_kind(name):
    t = explorer.make_target(name, 48 if name != explorer.REAL else 96)
    assert np.isclose(np.linalg.norm(t), 1.0)
    if name == "low rank (8)":
        assert np.linalg.matrix_rank(t) == 8
    with pytest.raises(ValueError, match="Unknown target"):
        explorer.make_target("nope")


def test_the_stored_real_update_loads():
    delta = load_real_update()
    assert delta.shape == (192, 192) and delta.dtype == np.float64 and np.isfinite(delta).all()
    s = np.linalg.svd(delta, compute_uv=False)
    assert s[0] > 0 and np.sum(s[:20] ** 2) > 0.5 * np.sum(s**2)  # a decaying spectrum, as data/README.md says


def test_explorer_state_uses_the_exact_fits_at_equal_budget():
    state = explorer.explorer_state("shift-structured", 16, d=96)
    assert state.r == 96 * 96 // 16 // (2 * 96) == 3
    assert state.lora_parameters <= state.c3a_parameters
    t = explorer.make_target("shift-structured", 96)
    assert state.c3a_error == pytest.approx(fitting.best_c3a_fit(t, 16).relative_error)
    assert state.lora_error == pytest.approx(fitting.best_lora_fit(t, 3).relative_error)
    assert state.c3a_energy == pytest.approx(1 - state.c3a_error**2)
    assert state.c3a_error < state.lora_error  # the shift-structured target favours C3A
    assert state.b in explorer.budget_block_sizes(96, 96)
    i = explorer.budget_block_sizes(96, 96).index(16)
    assert state.curve_c3a[i] == pytest.approx(state.c3a_error)
    assert state.curve_lora[state.r - 1] == pytest.approx(state.lora_error)
    assert "C3A, b = 16" in state.readout and "LoRA, r = 3" in state.readout


def test_keeping_fewer_frequencies_lowers_rank_and_raises_error():
    full = explorer.explorer_state("random", 8, d=48)
    fewer = explorer.explorer_state("random", 8, keep=3, d=48)
    assert fewer.keep == 3 and fewer.c3a_rank == 3 * 48 // 8 < full.c3a_rank == 48
    assert fewer.c3a_error > full.c3a_error and fewer.c3a_error_all_frequencies == full.c3a_error
    options = explorer.rank_options("random", 8, d=48)
    assert [label for label, _ in options][-1] == "48" and options[-1][1] == 8
    assert len({keep for _, keep in options}) == len(options)


def test_permuting_inputs_changes_c3a_not_lora():
    plain = explorer.explorer_state("shift-structured", 8, d=48)
    shuffled = explorer.explorer_state("shift-structured", 8, permute=True, d=48)
    assert shuffled.lora_error == pytest.approx(plain.lora_error)
    assert shuffled.c3a_error > plain.c3a_error + 0.3


def test_readout_table_headers_are_separate_cells():
    html = explorer.explorer_state("random", 8, d=48).readout
    assert "</th><th" in html and "padding" in html
    assert "C3A, b = 8</th>" in html


def _find(box, cls):
    found = []
    for child in getattr(box, "children", ()):
        if isinstance(child, cls):
            found.append(child)
        found.extend(_find(child, cls))
    return found


def test_every_control_redraws_a_different_figure(monkeypatch):
    import ipywidgets as widgets

    drawn = []
    monkeypatch.setattr(viz, "show_figure", lambda output, fig: drawn.append(viz.figure_png(fig)))
    box = explorer.rank_parameter_explorer(target="shift-structured", b=8, d=48)
    assert "c3a-explorer" in box._dom_classes
    (menu,) = _find(box, widgets.Dropdown)
    budget, rank = _find(box, widgets.SelectionSlider)
    (permute,) = _find(box, widgets.ToggleButton)
    (readout,) = _find(box, widgets.HTML)
    assert [budget.description, rank.description] == ["budget", "C3A rank"]
    assert len(drawn) == 1
    for control, value in (
        (budget, 16),
        (rank, rank.options[0][1]),
        (permute, True),
        (menu, "random"),
    ):
        before = readout.value
        control.value = value
        assert drawn[-1] != drawn[-2] and readout.value != before, control.description
    assert len(drawn) == 5  # one redraw per change, none for the intermediate rank options


def test_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Unknown target"):
        explorer.rank_parameter_explorer(target="nope")
    with pytest.raises(ValueError, match="Valid block sizes"):
        explorer.rank_parameter_explorer(b=5)


def test_a_missing_real_update_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("C3A_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m c3a_tutorial.course.real_update"):
        load_real_update()


def test_the_package_ships_the_same_real_update_as_data():
    from c3a_tutorial.course import real_update

    assert real_update.PACKAGE_COPY.read_bytes() == real_update.real_update_path().read_bytes(), (
        "c3a_tutorial/course/results/ must hold a copy of data/minilm_query_delta.npy (package data for Colab)"
    )


def test_degrees_of_freedom_follow_the_kept_frequencies():
    """Keeping k of b frequencies leaves (d_out/b)(d_in/b)·k real numbers free, not the whole parameter count: one
    frequency at b = 16 on 192 x 192 is 144 (issue #20). LoRA's rank-r matrices have r(d_in + d_out − r)."""
    full = explorer.explorer_state("shift-structured", 16)
    one = explorer.explorer_state("shift-structured", 16, keep=1)
    assert full.c3a_degrees_of_freedom == full.c3a_parameters == 2304
    assert one.keep == 1 and one.c3a_degrees_of_freedom == 144 and one.c3a_parameters == 2304
    assert "144 degrees of freedom" in one.summary() and ">144<" in one.readout
    assert full.lora_degrees_of_freedom == 6 * (192 + 192 - 6)
    # The dimension is real: the kept frequencies' kernels span a subspace of exactly that dimension.
    from c3a_tutorial.course.spectral import keep_frequencies

    state = explorer.explorer_state("random", 4, keep=3, d=8)
    rng = np.random.default_rng(0)
    kernels = [keep_frequencies(rng.standard_normal((2, 2, 4)), state.kept_frequencies) for _ in range(40)]
    span = np.linalg.matrix_rank(np.stack([k.ravel() for k in kernels]))
    assert span == state.c3a_degrees_of_freedom == 2 * 2 * state.keep


def test_the_energy_legend_keeps_its_colours_when_nothing_is_zeroed():
    """An empty bar container has no colour: the 'zeroed' entry once showed in the 'kept' colour (issue #20)."""
    from matplotlib.colors import to_rgba

    for keep in (None, 3):
        state = explorer.explorer_state("shift-structured", 8, keep=keep, d=48)
        ax = explorer.plot_explorer_state(state).axes[5]
        handles = ax.get_legend().legend_handles
        colours = {h.get_label(): to_rgba(h.get_facecolor()) for h in handles}
        assert colours == {"kept": to_rgba("C0"), "zeroed": to_rgba("lightgrey")}, keep


def test_how_thin_the_real_update_is():
    """Notebook 03 prints how far 32 steps moved the stored corner of W: under 1%, from the pretrained weight."""
    from c3a_tutorial.course import real_update
    from c3a_tutorial.experiments.config import FinetuneConfig

    assert real_update.BATCH_SIZE == FinetuneConfig.__dataclass_fields__["batch_size"].default
    assert real_update.STEPS == 32
    size = real_update.relative_size()
    assert 0.001 < size < 0.01
    assert real_update.pretrained_query_weight().shape == (384, 384)
