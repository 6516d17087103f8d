"""Scale and learning rate are one knob with Adam and zero init (notebook 04, section 8)."""

import pytest

from c3a_tutorial.course.lr_scaling import scale_lr_runs, train_path

SMALL = dict(steps=8, d_in=48, d_out=24, block_size=8, tokens=16)


def test_scaled_and_rescaled_runs_coincide():
    exact = scale_lr_runs(scale=1 / 48, lr=0.5, eps=0.0, **SMALL)
    assert exact["gap"] < 1e-9  # without ε, the same path to rounding
    assert exact["effective_lr"] == pytest.approx(0.5 / 48)
    assert exact["losses_scaled"][-1] < exact["losses_scaled"][0]  # it trains
    with_eps = scale_lr_runs(scale=1 / 48, lr=0.5, **SMALL)
    assert with_eps["gap"] < 0.05


def test_an_eps_scaled_with_the_update_makes_the_rule_exact():
    # Adam's ε at scale s acts like ε / s; with ε = 1e-8 · s in the scaled run the two paths agree to rounding.
    assert scale_lr_runs(scale=1 / 48, lr=0.5, eps_scaled=True, **SMALL)["gap"] < 1e-9
    assert scale_lr_runs(scale=1 / 48, lr=0.5, eps=1e-3, **SMALL)["gap"] > 1e-3  # a large fixed ε shows the gap


@pytest.mark.parametrize(
    "breaker", [dict(weight_decay=0.5), dict(init_weights="xavier_uniform"), dict(optimizer="sgd")]
)
def test_what_breaks_the_equivalence(breaker):
    assert scale_lr_runs(scale=1 / 48, lr=0.5, eps=0.0, **SMALL, **breaker)["gap"] > 0.1


def test_bad_optimizer():
    with pytest.raises(ValueError, match="optimizer"):
        train_path(1.0, 0.1, optimizer="lion", **SMALL)
