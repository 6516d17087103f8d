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
