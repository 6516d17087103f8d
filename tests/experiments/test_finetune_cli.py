"""The fine-tuning command line through its real entry point, ``main([...])``: flags derived from
``FinetuneConfig`` with their defaults shown, and the trained adapter kept with --save-adapter and
--export-peft, reloaded into a fresh model with the trained model's logits."""

import json
import re
from dataclasses import MISSING, fields

import pytest
import torch

from c3a_tutorial import adapter_layers, load_adapter
from c3a_tutorial.experiments import finetune as cli
from c3a_tutorial.experiments import train
from c3a_tutorial.experiments.backbone import load_classifier
from c3a_tutorial.experiments.config import FinetuneConfig

from ..bad_input import assert_usage_error, unwritable_directory

TEXTS = ["Return the event loop of this thread.", "Parse an e-mail message from a string.", "Start a new process."]


def _help_paragraphs(capsys) -> dict[str, str]:
    """``{"--block-size": "C3A block size b; ... (default: 24)", ...}`` from ``--help``, lines joined."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    options = capsys.readouterr().out.split("options:")[1]
    paragraphs = re.split(r"\n  (?=-)", "\n" + options)
    return {p.split()[0].rstrip(","): " ".join(p.split()) for p in paragraphs if p.strip()}


def test_help_shows_every_default(capsys):
    help_text = _help_paragraphs(capsys)
    for f in fields(FinetuneConfig):
        default = f.default_factory() if f.default is MISSING else f.default
        flag = "--no-progress" if f.name == "progress" else "--" + f.name.replace("_", "-")
        assert flag in help_text, f"{f.name} has no flag"
        paragraph = help_text[flag]
        assert "(default: " in paragraph, paragraph
        if default is None or isinstance(default, bool):
            assert "default: None" not in paragraph and "default: True" not in paragraph, paragraph
        else:
            shown = " ".join(default) if isinstance(default, list) else str(default)
            assert f"(default: {shown})" in paragraph, paragraph
    assert "default: per method, {'c3a': 3.0" in help_text["--lr"]
    assert "all-MiniLM-L6-v2" in help_text["--model"]
    for flag in ("--output", "--save-adapter", "--export-peft"):
        assert "(default: not " in help_text[flag], help_text[flag]


def test_flags_and_fields_are_one_to_one():
    parser = cli.build_parser()
    config, methods = cli.config_from_args(parser.parse_args([]))
    assert config == FinetuneConfig() and methods == [FinetuneConfig().method]
    # A value other than the default for every field arrives in the config unchanged.
    argv = ["--method", "lora", "--model", "some/dir", "--dataset", "sst2", "--block-size", "8", "--rank", "3"]
    argv += ["--lora-alpha", "16", "--n-frequency", "100"]
    argv += ["--target-modules", "query", "key", "--epochs", "2", "--lr", "0.5", "--head-lr", "0.25"]
    argv += ["--batch-size", "4", "--max-length", "20", "--train-size", "10", "--eval-size", "6", "--max-steps", "7"]
    argv += ["--warmup-fraction", "0.2", "--seed", "5", "--device", "cpu", "--no-progress", "--machine", "box"]
    argv += ["--compile", "--compile-backend", "aot_eager", "--cuda-graphs"]
    config, _ = cli.config_from_args(parser.parse_args(argv))
    expected = FinetuneConfig(
        method="lora", model="some/dir", dataset="sst2", block_size=8, rank=3, lora_alpha=16.0, n_frequency=100,
        target_modules=["query", "key"],
        epochs=2, lr=0.5, head_lr=0.25, batch_size=4, max_length=20, train_size=10, eval_size=6, max_steps=7,
        warmup_fraction=0.2, seed=5, device="cpu", progress=False, machine="box",
        compile=True, compile_backend="aot_eager", cuda_graphs=True,
    )  # fmt: skip
    assert config == expected
    for f in fields(FinetuneConfig):  # every field was given a non-default value above
        default = f.default_factory() if f.default is MISSING else f.default
        assert getattr(config, f.name) != default, f.name
    config, methods = cli.config_from_args(parser.parse_args(["--method", "all"]))
    assert methods == ["c3a", "lora", "full"] and config.method == "c3a"


# PEFT 0.21 still calls a name transformers 5 deprecates; that warning is about them, not this code.
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
@pytest.mark.parametrize("method, setting, filename", [("c3a", ["--block-size", "8"], "adapter.safetensors"),
                                                       ("lora", ["--rank", "2"], "adapter.pt")])  # fmt: skip
def test_saved_and_exported_adapters_reproduce_the_trained_logits(
    tiny_dir, tmp_path, monkeypatch, capsys, finetune_results, method, setting, filename
):
    peft = pytest.importorskip("peft")
    results = finetune_results
    path, peft_dir = tmp_path / "runs" / filename, tmp_path / "peft"
    argv = ["--model", str(tiny_dir), "--method", method, *setting, "--epochs", "1", "--max-steps", "3"]
    argv += ["--lr", "1.0" if method == "c3a" else "0.05", "--head-lr", "0.05", "--train-size", "48"]
    argv += ["--eval-size", "16", "--max-length", "16", "--batch-size", "16", "--device", "cpu", "--no-progress"]
    main_record = cli.main([*argv, "--save-adapter", str(path), "--export-peft", str(peft_dir)])
    (result,) = results
    assert result.record is main_record
    assert f"adapter saved to {path}" in capsys.readouterr().out
    trained = train.predict(result.model, result.tokenizer, TEXTS, max_length=16)

    fresh, tokenizer = load_classifier(str(tiny_dir), num_labels=result.data.num_labels, seed=123)
    untrained = train.predict(fresh, tokenizer, TEXTS, max_length=16)
    assert (untrained - trained).abs().max() > 1e-3  # another head, no adapter: the file must bring both back
    reloaded = train.predict(load_adapter(fresh, path), tokenizer, TEXTS, max_length=16)
    torch.testing.assert_close(reloaded, trained, rtol=0, atol=1e-5)

    base, _ = load_classifier(str(tiny_dir), num_labels=result.data.num_labels, seed=321)
    peft_model = peft.PeftModel.from_pretrained(base, peft_dir)
    torch.testing.assert_close(train.predict(peft_model, tokenizer, TEXTS, max_length=16), trained, rtol=0, atol=1e-5)


def _never(*args, **kwargs):
    raise AssertionError("training started despite a bad input")


@pytest.mark.parametrize("method", ["full", "all"])
def test_save_adapter_without_one_adapter_method_fails_before_training(tmp_path, monkeypatch, capsys, method):
    """A refusal after training would fine-tune MiniLM three times first (--method all): training is not even
    reachable here, so the test fails at once if the check moves after it."""
    monkeypatch.setattr(cli, "finetune", _never)
    for flag in ("--save-adapter", "--export-peft"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--method", method, flag, str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "choose one adapter method (c3a, lora)" in err and "save_pretrained" in err, err
    assert not (tmp_path / "out").exists()


def test_a_size_that_fits_only_some_target_layers_lists_the_sizes_that_fit_all(tiny_dir):
    model, _ = load_classifier(str(tiny_dir), num_labels=2)  # query 32x32, intermediate.dense 64x32
    config = FinetuneConfig(model=str(tiny_dir), target_modules=["query", "intermediate.dense"], block_size=12)
    with pytest.raises(ValueError) as info:
        cli.check_sizes_fit(config, ["lora", "c3a"], model)
    message = str(info.value)
    assert message.startswith("--block-size 12 does not divide bert.encoder.layer.0.attention.self.query"), message
    assert message.endswith(
        "Values that fit every target layer (out x in: [(32, 32), (64, 32)]): [1, 2, 4, 8, 16, 32]."
    )
    cli.check_sizes_fit(FinetuneConfig(target_modules=["query", "intermediate.dense"], block_size=16), ["c3a"], model)
    cli.check_sizes_fit(config, ["lora", "full"], model)  # LoRA's rank fits any layer; full has no size


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit status 2, nothing trained, nothing written (issue #18). New options join here.


def _existing_file(t, name="out.json"):
    (t / name).write_text("an earlier run's record")
    return str(t / name)


def _directory(t, name="out", with_file=False):
    (t / name).mkdir()
    if with_file:
        (t / name / "keep.txt").write_text("someone's file")
    return str(t / name)


def _under_a_file(t, name="out.json"):
    (t / "file").write_text("a file, not a folder")
    return str(t / "file" / name)


def _unwritable(t, name="out.json"):
    return str(unwritable_directory(t) / name)


BAD_INPUTS = [  # (id, argv from the temporary folder, what the one-line error must say)
    ("target-modules-foo", lambda t: ["--target-modules", "foo"], "--target-modules foo matches no linear layer"),
    ("block-size-7", lambda t: ["--block-size", "7"], "--block-size 7 does not divide"),
    ("rank-above-width", lambda t: ["--method", "lora", "--rank", "33"], "--rank 33 is larger than"),
    ("epochs-0", lambda t: ["--epochs", "0"], "epochs must be a positive integer"),
    ("batch-size-negative", lambda t: ["--batch-size", "-1"], "batch_size must be a positive integer"),
    ("max-steps-0", lambda t: ["--max-steps", "0"], "max_steps must be a positive integer"),
    ("lr-negative", lambda t: ["--lr", "-1"], "lr must be a positive, finite number"),
    ("lr-inf", lambda t: ["--lr", "inf"], "'inf' is not a finite number"),
    ("head-lr-nan", lambda t: ["--head-lr", "nan"], "'nan' is not a finite number"),
    ("warmup-1.5", lambda t: ["--warmup-fraction", "1.5"], "warmup_fraction must be in [0, 1)"),
    ("device-tpu", lambda t: ["--device", "tpu"], "'tpu' is not a device name"),
    ("model-missing", lambda t: ["--model", str(t / "no_model")], "Could not load the model"),
    ("dataset-unknown", lambda t: ["--dataset", "nope"], "invalid choice: 'nope'"),
    ("full-save-adapter", lambda t: ["--method", "full", "--save-adapter", str(t / "a.pt")], "choose one adapter"),
    ("output-exists", lambda t: ["--output", _existing_file(t)], "out.json already exists: pass --force"),
    ("output-directory", lambda t: ["--output", _directory(t)], "it is a directory, and a file name is needed"),
    ("output-under-file", lambda t: ["--output", _under_a_file(t)], "file is a file, not a directory"),
    ("output-unwritable", lambda t: ["--output", _unwritable(t)], "is not writable"),
    ("save-adapter-exists", lambda t: ["--save-adapter", _existing_file(t, "a.pt")], "a.pt already exists"),
    ("save-adapter-directory", lambda t: ["--save-adapter", _directory(t)], "it is a directory"),
    ("save-adapter-under-file", lambda t: ["--save-adapter", _under_a_file(t, "a.pt")], "is a file, not a directory"),
    ("save-adapter-unwritable", lambda t: ["--save-adapter", _unwritable(t, "a.pt")], "is not writable"),
    ("export-peft-file", lambda t: ["--export-peft", _existing_file(t, "peft")], "it is a file, and a directory"),
    ("export-peft-not-empty", lambda t: ["--export-peft", _directory(t, "peft", True)], "peft already exists"),
    ("export-peft-under-file", lambda t: ["--export-peft", _under_a_file(t, "peft")], "is a file, not a directory"),
    ("export-peft-unwritable", lambda t: ["--export-peft", _unwritable(t, "peft")], "is not writable"),
    ("cuda-graphs-on-cpu", lambda t: ["--cuda-graphs"], "--cuda-graphs needs a CUDA GPU"),
    ("compile-backend-foo", lambda t: ["--compile", "--compile-backend", "foo"], "invalid choice: 'foo'"),
    ("cuda-graphs-aot-eager", lambda t: ["--cuda-graphs", "--compile-backend", "aot_eager"],
     "an Inductor mode"),
    ("two-outputs-one-path", lambda t: ["--output", str(t / "x"), "--save-adapter", str(t / "x")],
     "is also --output's path"),
]  # fmt: skip


@pytest.mark.parametrize("make_argv, fragment", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_status_2_and_nothing_written(
    tiny_dir, tmp_path, monkeypatch, capsys, make_argv, fragment
):
    def never(*args, **kwargs):
        raise AssertionError("training started despite a bad input")

    monkeypatch.setattr(cli, "finetune", never)
    base = ["--model", str(tiny_dir), "--block-size", "8", "--device", "cpu", "--no-progress", "--max-length", "16"]
    argv = [*base, *make_argv(tmp_path)]
    assert_usage_error(cli.main, argv, "python -m c3a_tutorial.finetune", fragment, tmp_path, capsys)


def test_force_replaces_and_a_failed_output_does_not_stop_the_others(tiny_dir, tmp_path, monkeypatch, capsys):
    """Issue #18: an --export-peft that failed at the end (after training) also lost the JSON record. Each output
    is now written on its own; the failure is named and the exit status is 1. --force replaces earlier outputs."""
    record, adapter, peft_dir = tmp_path / "run.json", tmp_path / "a.safetensors", tmp_path / "peft"
    record.write_text("old")
    adapter.write_text("old")
    peft_dir.mkdir()
    (peft_dir / "adapter_config.json").write_text("old")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "export_to_peft", disk_full)
    argv = ["--model", str(tiny_dir), "--block-size", "8", "--device", "cpu", "--no-progress", "--max-length", "16"]
    argv += ["--train-size", "16", "--eval-size", "8", "--batch-size", "8", "--max-steps", "1", "--epochs", "1"]
    argv += ["--output", str(record), "--save-adapter", str(adapter), "--export-peft", str(peft_dir), "--force"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: --export-peft {peft_dir}: the PEFT adapter was not written (OSError:"), err
    assert json.loads(record.read_text())["method"] == "c3a"
    fresh, _ = load_classifier(str(tiny_dir), num_labels=8)
    assert adapter_layers(load_adapter(fresh, adapter))
    assert (peft_dir / "adapter_config.json").read_text() == "old"  # the failed one, as it was


def test_help_states_the_optimizer(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("AdamW", "weight decay 0", "eps 1e-8 times the adapter's ΔW scale", "clipped to norm 1",
                     "rises linearly over the first --warmup-fraction", "falls linearly to zero"):  # fmt: skip
        assert fragment in text, fragment


def test_a_half_precision_checkpoint_loads_as_float32(tiny_dir, tmp_path):
    """A model saved in float16 (to halve a download, say) trains in float32: AdamW's small steps on float16
    weights would round away. The loaded weights are the file's float16 values, widened."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    half = tmp_path / "half"
    shutil.copytree(tiny_dir, half)
    tensors = load_file(half / "model.safetensors")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, half / "model.safetensors")
    model, _ = load_classifier(str(half), num_labels=2)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    name = next(k for k in tensors if k.endswith("query.weight"))
    loaded = dict(model.named_parameters())[next(k for k, _ in model.named_parameters() if k.endswith(name))]
    assert torch.equal(loaded, tensors[name].half().float())
