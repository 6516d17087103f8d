"""--compile and --cuda-graphs, the training loop's compiled steps (off by default): refused where they cannot run,
the same losses as the eager loop where they can, and recorded in the run's JSON.

What the CPU allows of --cuda-graphs is checked here (the refusal, the static-shape batches); its run needs CUDA."""

import json

import pytest
import torch

from c3a_tutorial.experiments import finetune as cli
from c3a_tutorial.experiments import train
from c3a_tutorial.experiments.config import FinetuneConfig, validate_config

from ..bad_input import assert_usage_error

PROG = "python -m c3a_tutorial.finetune"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def _tiny(tiny_dir, **kw) -> FinetuneConfig:
    base = dict(model=str(tiny_dir), method="c3a", block_size=8, max_length=24, batch_size=8, train_size=40,
                eval_size=16, epochs=1, max_steps=4, lr=1.0, head_lr=1e-2, progress=False, device="cpu")  # fmt: skip
    return FinetuneConfig(**{**base, **kw})


def _kernels(model) -> list[torch.Tensor]:
    return [p.detach().clone() for n, p in model.named_parameters() if n.endswith("kernel")]


def test_both_options_are_off_by_default():
    config = FinetuneConfig()
    assert (config.compile, config.cuda_graphs, config.compile_backend) == (False, False, "inductor")
    model = torch.nn.Linear(2, 2)
    assert train.compile_model(model, config, torch.device("cpu")) == (model, None)  # the eager model itself


@no_cuda
def test_cuda_graphs_without_cuda_is_one_clear_line_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "finetune", lambda *a, **k: pytest.fail("trained although --cuda-graphs cannot run"))
    out = tmp_path / "record.json"
    for argv in (["--cuda-graphs"], ["--cuda-graphs", "--compile", "--device", "cpu"]):
        err = assert_usage_error(cli.main, [*argv, "--output", str(out)], PROG, "--cuda-graphs needs a CUDA GPU",
                                 tmp_path, capsys)  # fmt: skip
        assert "use --compile" in err.strip().splitlines()[-1]
    with pytest.raises(ValueError, match="needs a CUDA GPU"):  # the Python API refuses it too
        train.set_up(FinetuneConfig(cuda_graphs=True, device="cpu"))


def test_bad_compile_settings_are_usage_errors(tmp_path, capsys):
    assert_usage_error(cli.main, ["--compile", "--compile-backend", "tvm"], PROG, "invalid choice: 'tvm'", tmp_path,
                       capsys)  # fmt: skip
    argv = ["--cuda-graphs", "--compile-backend", "aot_eager"]
    assert_usage_error(
        cli.main, argv, PROG, "leave compile_backend (--compile-backend) at 'inductor'", tmp_path, capsys
    )
    with pytest.raises(ValueError, match="compile_backend='tvm' is not one of"):
        validate_config(FinetuneConfig(compile_backend="tvm"))


def test_static_batches_have_one_shape_and_drop_the_short_last_batch(tiny_dir, stdlib):
    config = _tiny(tiny_dir, max_length=24, batch_size=8)
    _, tokenizer = train.build_model(config, stdlib.num_labels)
    examples = stdlib.train[:21]  # 2 full batches of 8, and 5 left over
    static = list(train.batches(examples, tokenizer, config, static=True))
    assert [tuple(b["input_ids"].shape) for b in static] == [(8, 24), (8, 24)]
    assert all(b["attention_mask"].shape == b["input_ids"].shape and len(b["labels"]) == 8 for b in static)
    padded = list(train.batches(examples, tokenizer, config))  # the default: per-batch padding, every example
    assert sum(len(b["labels"]) for b in padded) == 21 and padded[-1]["input_ids"].shape[0] == 5
    assert any(b["input_ids"].shape[1] < 24 for b in padded)  # the docstrings are shorter than 24 tokens here
    # The same tokens, only more padding: the real ones of a static batch are the padded batch's.
    first, same = static[0], padded[0]
    width = same["input_ids"].shape[1]
    assert torch.equal(
        first["input_ids"][:, :width] * same["attention_mask"], same["input_ids"] * same["attention_mask"]
    )
    assert int(first["attention_mask"].sum()) == int(same["attention_mask"].sum())


def test_no_cpp_compiler_falls_back_to_aot_eager_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(train, "cpp_compiler", lambda: None)
    model = torch.nn.Linear(3, 2)
    compiled, what = train.compile_model(model, FinetuneConfig(compile=True), torch.device("cpu"))
    assert what == {"backend": "aot_eager", "mode": "default", "cuda_graphs": False}
    assert "no C++ compiler found" in capsys.readouterr().err
    x = torch.randn(4, 3)
    torch.testing.assert_close(compiled(x), model(x))  # the compiled module runs the same weights
    assert compiled.weight is model.weight


def test_compile_gives_the_eager_losses_trains_the_adapter_and_is_recorded(tiny_dir, stdlib, tmp_path,
                                                                         finetune_results):  # fmt: skip
    """The command line with --compile (aot_eager: traced by Dynamo and AOTAutograd, seconds here) against the
    eager loop: the same loss curve to rounding, the adapter's kernels moved, the record says what ran."""
    eager = train.finetune(_tiny(tiny_dir), data=stdlib)
    out = tmp_path / "compiled.json"
    argv = ["--model", str(tiny_dir), "--block-size", "8", "--max-length", "24", "--batch-size", "8"]
    argv += ["--train-size", "40", "--eval-size", "16", "--epochs", "1", "--max-steps", "4", "--lr", "1.0"]
    argv += ["--head-lr", "0.01", "--no-progress", "--device", "cpu", "--dataset", "stdlib"]
    argv += ["--compile", "--compile-backend", "aot_eager", "--output", str(out)]
    before = _kernels(train.build_model(_tiny(tiny_dir), stdlib.num_labels)[0])
    cli.main(argv)
    record = json.loads(out.read_text())
    assert record["compile"] == {"backend": "aot_eager", "mode": "default", "cuda_graphs": False}
    assert eager.record["compile"] is None
    assert len(record["loss_curve"]) == 4
    torch.testing.assert_close(record["loss_curve"], eager.record["loss_curve"], atol=2e-5, rtol=0)
    after = _kernels(finetune_results[0].model)
    assert after and all(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    for a, b in zip(after, _kernels(eager.model), strict=True):  # and they moved as the eager loop moved them
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(train.cpp_compiler() is None, reason="Inductor's CPU backend needs a C++ compiler")
def test_inductor_on_the_cpu_gives_the_eager_losses(tiny_dir, stdlib, monkeypatch):
    """Inductor's own kernels (C++ on the CPU; C3A's complex FFT ops stay eager inside its graph). Its dropout draws
    from another generator than eager's, so this comparison asks Inductor for eager's random ops."""
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)
    eager = train.finetune(_tiny(tiny_dir, max_steps=3), data=stdlib)
    compiled = train.finetune(_tiny(tiny_dir, max_steps=3, compile=True), data=stdlib)
    assert compiled.record["compile"] == {"backend": "inductor", "mode": "default", "cuda_graphs": False}
    torch.testing.assert_close(compiled.record["loss_curve"], eager.record["loss_curve"], atol=1e-4, rtol=0)


@needs_cuda
def test_cuda_graphs_trains_on_cuda_like_the_eager_loop(tiny_dir, stdlib):
    """The whole --cuda-graphs path on a GPU: static batches, warm-up steps, capture, replay; the adapter trains."""
    config = _tiny(tiny_dir, device="cuda", max_steps=6, train_size=48)
    graphs = train.finetune(config, data=stdlib, cuda_graphs=True)
    assert graphs.record["compile"] == {"backend": "inductor", "mode": "reduce-overhead", "cuda_graphs": True}
    assert graphs.record["steps"] == 6 and all(map(torch.isfinite, torch.tensor(graphs.record["loss_curve"])))
    assert all(k.abs().sum() > 0 for k in _kernels(graphs.model))
    with pytest.raises(ValueError, match="make none of --batch-size 8"):
        train.set_up(_tiny(tiny_dir, device="cuda", train_size=5, cuda_graphs=True), stdlib)
