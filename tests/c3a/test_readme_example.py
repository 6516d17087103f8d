"""The README's practitioner example ("## Use it on your own model"), run as written on a tiny BERT."""

import re
from pathlib import Path

import pytest
import torch

from c3a_tutorial import adapter_layers

from ..tiny_bert import make_tiny_bert

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Use it on your own model"


def readme_example() -> str:
    text = README.read_text()
    assert HEADING in text, f"README.md has no section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"README.md's {HEADING!r} has no python block"
    return blocks[0]


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # raised inside PEFT's load
def test_readme_example_runs_and_its_models_agree(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    model_path = make_tiny_bert(tmp_path / "tiny_bert")
    generator = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(0, 1000, (4, 8), generator=generator),
            "attention_mask": torch.ones(4, 8, dtype=torch.long),
            "labels": torch.randint(0, 3, (4,), generator=generator),
        }
        for _ in range(3)
    ]
    monkeypatch.chdir(tmp_path)  # the example writes adapter.safetensors, peft_adapter/ and merged/ here
    namespace = {"model_path": str(model_path), "batches": batches}
    exec(compile(readme_example(), str(README), "exec"), namespace)

    model, reloaded, peft_model, plain = (namespace[k] for k in ("model", "reloaded", "peft_model", "plain"))
    kernels = [layer.kernel for layer in adapter_layers(model).values()]
    assert kernels and all(k.abs().max() > 0 for k in kernels)  # training moved the zero-initialised kernels
    assert not adapter_layers(reloaded) and not adapter_layers(plain)  # merged back into nn.Linear layers
    test_batch = {k: v for k, v in batches[0].items() if k != "labels"}
    with torch.no_grad():
        expected = model(**test_batch).logits
        for name, other in [("reloaded", reloaded), ("peft_model", peft_model.eval()), ("plain", plain.eval())]:
            torch.testing.assert_close(other(**test_batch).logits, expected, atol=1e-5, rtol=0, msg=name)


def test_help_opens_with_a_usage_example_that_runs(tmp_path, monkeypatch):
    """help(c3a_tutorial) starts with a short example; it runs as written on a tiny BERT."""
    transformers = pytest.importorskip("transformers")
    import textwrap

    import c3a_tutorial

    intro = c3a_tutorial.__doc__.split("Conventions", 1)[0]
    example = textwrap.dedent(intro.split("::\n", 1)[1].split("\n\n``", 1)[0])
    assert "add_adapters(" in example and "merge_and_unload(" in example
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    namespace = {"model": transformers.BertForSequenceClassification(config).eval()}
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "c3a_tutorial.__doc__", "exec"), namespace)
    assert (tmp_path / "adapter.safetensors").is_file()
    assert not adapter_layers(namespace["model"])


def readme_block(containing: str) -> str:
    """The python block of the README's practitioner section that contains ``containing``."""
    section = README.read_text().split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S) if containing in b]
    assert len(blocks) == 1, f"README.md's {HEADING!r} has {len(blocks)} python blocks with {containing!r}"
    return blocks[0]


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_readme_evaluates_an_adapter_the_command_line_saved(tmp_path, monkeypatch, capsys):
    """The README's "Evaluate an adapter saved by the command line", on an adapter the CLI trained: the block's
    logits are the trained model's logits on the whole test split."""
    pytest.importorskip("transformers")
    from c3a_tutorial.experiments import backbone, train
    from c3a_tutorial.experiments import finetune as cli

    model_dir = make_tiny_bert(tmp_path / "tiny_bert")
    results = []
    monkeypatch.setattr(cli, "finetune", lambda *a, **k: results.append(train.finetune(*a, **k)) or results[-1])
    monkeypatch.chdir(tmp_path)
    argv = ["--model", str(model_dir), "--method", "c3a", "--block-size", "8", "--lr", "1.0", "--epochs", "1"]
    argv += ["--max-steps", "2", "--train-size", "32", "--eval-size", "16", "--batch-size", "16", "--no-progress"]
    cli.main([*argv, "--device", "cpu", "--save-adapter", "runs/c3a.safetensors"])
    (result,) = results

    monkeypatch.setattr(backbone, "default_model_path", lambda: model_dir)  # the block's None: this run's model
    namespace = {}
    exec(compile(readme_block("load_dataset("), str(README), "exec"), namespace)
    texts = [text for text, _ in result.data.test]
    expected = train.predict(result.model, result.tokenizer, texts, max_length=128)
    assert len(texts) > 100 and expected.shape == namespace["logits"].shape
    torch.testing.assert_close(namespace["logits"], expected, atol=1e-5, rtol=0)
    labels = torch.tensor([label for _, label in result.data.test])
    assert namespace["accuracy"] == pytest.approx((expected.argmax(-1) == labels).float().mean().item())
    assert f"test accuracy {namespace['accuracy']:.3f} on {len(texts)} examples" in capsys.readouterr().out


def test_readme_trainer_example_runs_checkpoints_and_disables(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    model_path = make_tiny_bert(tmp_path / "tiny_bert")
    generator = torch.Generator().manual_seed(0)
    train_dataset = [
        {"input_ids": torch.randint(0, 1000, (8,), generator=generator), "labels": torch.tensor(i % 3)}
        for i in range(16)
    ]
    batch = {"input_ids": torch.randint(0, 1000, (2, 8), generator=generator)}
    monkeypatch.chdir(tmp_path)
    namespace = {"model_path": str(model_path), "train_dataset": train_dataset, "batch": batch}
    exec(compile(readme_block("Trainer("), str(README), "exec"), namespace)
    assert (tmp_path / "checkpoints" / "checkpoint-2" / "model.safetensors").is_file()
    base = transformers.AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=3)
    model = namespace["model"]
    base.load_state_dict(
        {k: v for k, v in model.state_dict().items() if "kernel" not in k and "base_layer" not in k}, strict=False
    )  # the trained head, and the base weights, without the adapters
    with torch.no_grad():
        torch.testing.assert_close(namespace["reference"], base.eval()(**batch).logits, atol=0, rtol=0)
        assert not torch.allclose(model.eval()(**batch).logits, namespace["reference"])
