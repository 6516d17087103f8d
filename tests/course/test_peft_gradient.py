"""The PEFT input-gradient measurement (notebook 04, sections 4-5): mechanism and per-layer cosines."""

import pytest
import torch

pytest.importorskip("peft")

from c3a_tutorial.course import peft_gradient as pg  # noqa: E402
from tests.tiny_bert import make_tiny_bert  # noqa: E402


def test_reverse_blocks():
    g = torch.arange(8.0)
    assert pg.reverse_blocks(g, 4).tolist() == [0, 3, 2, 1, 4, 7, 6, 5]
    assert torch.equal(pg.reverse_blocks(g, 2), g) and torch.equal(pg.reverse_blocks(g, 1), g)
    assert torch.equal(pg.reverse_blocks(pg.reverse_blocks(g, 4), 4), g)
    # fft(g) / b == ifft(rev(g)): the identity the mechanism rests on
    h = torch.randn(5, dtype=torch.float64)
    assert torch.allclose(torch.fft.fft(h) / 5, torch.fft.ifft(pg.reverse_blocks(h, 5)))


def test_mechanism_rows():
    rows = {r["b"]: r for r in pg.input_gradient_mechanism(block_sizes=(1, 2, 3, 4, 5), d=60, tokens=3)}
    for b in (1, 2):  # reversal is the identity: PEFT's input gradient is right
        assert rows[b]["rev_is_identity"] and rows[b]["x_vs_dense"] < 1e-12
    for b in (3, 4, 5):  # wrong by order 1, and exactly the correct operator applied to rev(g)
        assert not rows[b]["rev_is_identity"]
        assert rows[b]["x_vs_dense"] > 0.3
        assert rows[b]["x_vs_reversed"] < 1e-12
    assert all(r["w_vs_autograd"] < 1e-12 for r in rows.values())  # the kernel gradient is right
    with pytest.raises(ValueError, match="multiple"):
        pg.input_gradient_mechanism(block_sizes=(7,), d=60)


def test_set_update_size_hits_the_ratio():
    import peft

    base = torch.nn.Sequential(torch.nn.Linear(24, 24))
    model = peft.get_peft_model(base, peft.C3AConfig(block_size=4, target_modules=["0"], init_weights=True))
    layer = next(iter(pg._c3a_layers(model).values()))
    gen = torch.Generator().manual_seed(0)
    assert pg.set_update_size(layer, 0.25, gen) == pytest.approx(0.25, rel=1e-5)
    assert pg.set_update_size(layer, 0.0, gen) == 0.0 and not layer.c3a_kernel["default"].any()


def test_kernel_gradient_cosines_on_a_tiny_bert(tmp_path):
    from c3a_tutorial.experiments.backbone import load_classifier

    model, tokenizer = load_classifier(make_tiny_bert(tmp_path / "bert", layers=3), num_labels=8)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    result = pg.kernel_gradient_cosines(
        ratios=(0.0, 0.5), block_size=8, n_texts=4, max_length=12, model=model, tokenizer=tokenizer
    )
    assert result["layers"] == 3 and [s["label"][:4] for s in result["settings"]] == ["‖ΔW‖", "‖ΔW‖", "PEFT"]
    zero, half, default = result["settings"]
    assert zero["cosines"] == pytest.approx([1.0] * 3, abs=1e-6)  # zero kernels: the adapter term vanishes
    assert half["cosines"][-1] == pytest.approx(1.0, abs=1e-6)  # the top layer is always exact
    assert min(half["relative_errors"][:-1]) > 1e-3  # below it, PEFT's gradient is off
    assert half["relative_errors"][-1] < 1e-5 and max(zero["relative_errors"]) < 1e-5
    assert half["ratio"] == 0.5 and 0 < default["ratio"] < 0.5
    # the caller's model comes back without PEFT's layers and with its weights
    assert not any("c3a" in name for name, _ in model.named_modules())
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert "layer 2" in pg.format_cosines(result)
