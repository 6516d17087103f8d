"""A tiny randomly initialised BERT (hidden 32, 2 layers) saved like a pretrained model, for fast tests.

It borrows the bundled MiniLM tokenizer, so nothing is downloaded. The saved model has no head:
``load_classifier`` adds a fresh one with the number of labels the task needs.
"""

from pathlib import Path


def make_tiny_bert(directory: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    import torch
    import transformers

    from c3a_tutorial.experiments.backbone import default_model_path

    tokenizer = transformers.AutoTokenizer.from_pretrained(default_model_path())
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    transformers.BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Path(directory)
