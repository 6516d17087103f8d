"""The training loop, its JSON record, the model loader and the command line's error messages."""

import json

import pytest
import torch

from c3a_tutorial.experiments import finetune as ft
from c3a_tutorial.experiments.backbone import load_classifier

RECORD_KEYS = {
    "method", "accuracy", "loss_curve", "eval", "trainable_params", "total_params", "peak_memory_mb",
    "peak_memory_kind", "time_per_step_s", "device", "seed", "versions", "machine", "lr", "head_lr",
}  # fmt: skip


def _config(tiny_dir, **kw):
    base = dict(model=str(tiny_dir), max_length=32, batch_size=16, train_size=128, eval_size=64, progress=False)
    return ft.FinetuneConfig(**{**base, **kw})


def test_c3a_training_lowers_the_loss_and_the_record_is_complete(tiny_dir, stdlib):
    config = _config(tiny_dir, method="c3a", block_size=8, epochs=4, lr=1.0, head_lr=1e-2)
    result = ft.finetune(config, data=stdlib)
    record = result.record
    assert RECORD_KEYS <= set(record)
    json.dumps(record)  # JSON-able as it stands
    curve = record["loss_curve"]
    assert len(curve) == record["steps"] == 4 * 128 // 16
    assert sum(curve[-4:]) / 4 < sum(curve[:4]) / 4 - 0.05, curve
    assert [e["epoch"] for e in record["eval"]] == [1, 2, 3, 4]
    assert 0.0 <= record["accuracy"] <= 1.0
    assert record["device"] == "cpu" and record["time_per_step_s"] > 0 and record["peak_memory_mb"] >= 0
    assert record["versions"]["torch"] == torch.__version__
    # Trainable: 2 layers x (query, value) kernels of 32*32/8, plus the 8-way head (32*8 + 8).
    assert record["trainable_params"] == 2 * 2 * 32 * 32 // 8 + 32 * 8 + 8
    kernel = result.model.bert.encoder.layer[0].attention.self.query.kernel
    assert kernel.abs().sum() > 0  # the adapter moved away from its zero init


def test_full_finetuning_trains_every_parameter_and_lora_counts(tiny_dir, stdlib):
    full = ft.finetune(_config(tiny_dir, method="full", epochs=1, max_steps=3), data=stdlib).record
    assert full["trainable_params"] == full["total_params"] and full["steps"] == 3
    lora = ft.finetune(_config(tiny_dir, method="lora", rank=4, epochs=1, max_steps=2), data=stdlib).record
    assert lora["trainable_params"] == 2 * 2 * 4 * (32 + 32) + 32 * 8 + 8
    assert lora["lr"] == ft.DEFAULT_LR["lora"] and lora["head_lr"] == ft.DEFAULT_HEAD_LR


def test_same_seed_same_run(tiny_dir, stdlib):
    a = ft.finetune(_config(tiny_dir, method="c3a", block_size=16, epochs=1, max_steps=3), data=stdlib).record
    b = ft.finetune(_config(tiny_dir, method="c3a", block_size=16, epochs=1, max_steps=3), data=stdlib).record
    assert a["loss_curve"] == b["loss_curve"] and a["rank_checksums"] == b["rank_checksums"]


@pytest.mark.parametrize("method, scale", [("lora", 8 / 8), ("c3a", 1 / 32), ("dora", None), ("full", None)])
def test_parameter_groups_put_the_head_at_head_lr_and_scale_eps_with_our_adapters(tiny_dir, method, scale):
    model, _ = ft.build_model(_config(tiny_dir, method=method, block_size=8), num_labels=3)
    groups = ft.parameter_groups(model, lr=1e-3, head_lr=5e-2)
    assert [g["lr"] for g in groups] == [1e-3, 5e-2]
    # This package's adapters: eps × their ΔW scale (LoRA r=8, alpha 8: 1; C3A on tiny BERT: 1/d_in = 1/32).
    # PEFT's methods and full fine-tuning: Adam's plain eps.
    assert groups[0]["eps"] == pytest.approx(1e-8 * (scale or 1.0)) and groups[1]["eps"] == 1e-8
    head_ids = {id(p) for n, p in model.named_parameters() if p.requires_grad and "classifier" in n}
    assert {id(p) for p in groups[1]["params"]} == head_ids
    assert not head_ids & {id(p) for p in groups[0]["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable


def test_the_bundled_model_loads_offline():
    model, tokenizer = load_classifier(num_labels=8, seed=0)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    assert model.classifier.out_features == 8
    names = dict(model.named_modules())
    assert isinstance(names["bert.encoder.layer.0.attention.self.query"], torch.nn.Linear)
    assert tokenizer("a docstring")["input_ids"][0] == tokenizer.cls_token_id
    with pytest.raises(ValueError, match="Could not load the model"):
        load_classifier("/nonexistent/model/dir")


def _cli_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        ft.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_cli_block_size_that_does_not_divide_lists_the_valid_ones(capsys):
    err = _cli_error(capsys, ["--method", "c3a", "--block-size", "7"])
    assert "--block-size 7 does not divide" in err
    assert "[1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 384]" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "dora"], "invalid choice: 'dora'"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--rank", "-2", "--method", "lora"], "rank must be a positive integer"),
        (["--lr", "-1"], "lr must be a positive, finite number"),
        (["--device", "cuda"], "not available here"),
        (["--dataset", "imdb"], "invalid choice: 'imdb'"),
        (["--train-size", "0"], "train_size must be a positive integer"),
    ],
)
def test_cli_bad_arguments_say_what_is_wrong(capsys, argv, message):
    if argv == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert message in _cli_error(capsys, argv)


def test_cli_writes_the_json_record_and_prints_the_table(tiny_dir, tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["--model", str(tiny_dir), "--method", "lora", "--rank", "2", "--epochs", "1", "--max-steps", "2"]
    argv += ["--train-size", "32", "--eval-size", "16", "--max-length", "16", "--no-progress", "--output", str(out)]
    record = ft.main(argv)
    assert json.loads(out.read_text()) == record
    printed = capsys.readouterr().out
    assert "test acc" in printed and "lora" in printed and '"trainable_params"' in printed


def test_cli_method_all_runs_the_three_and_prints_one_table(tiny_dir, tmp_path, capsys):
    out = tmp_path / "all.json"
    argv = ["--model", str(tiny_dir), "--method", "all", "--block-size", "8", "--rank", "2", "--max-steps", "1"]
    argv += ["--train-size", "16", "--eval-size", "16", "--max-length", "16", "--no-progress", "--output", str(out)]
    records = ft.main(argv)
    assert [r["method"] for r in records] == ["c3a", "lora", "full"]
    assert json.loads(out.read_text()) == records
    table = capsys.readouterr().out
    assert table.count("test acc") == 1
    assert "b=8" in table and "r=2" in table and "full" in table
