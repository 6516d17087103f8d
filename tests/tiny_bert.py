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


def tiny_gpt2(seed: int = 0, vocab: int = 100):
    """A tiny randomly initialised ``GPT2LMHeadModel`` (n_embd 32, 2 layers) built from a config, in eval mode.

    Its attention and MLP are transformers ``Conv1D`` layers (weight stored in x out): ``c_attn`` 32 -> 96,
    ``attn.c_proj`` 32 -> 32, ``c_fc`` 32 -> 128, ``mlp.c_proj`` 128 -> 32. Nothing is downloaded.
    """
    import torch
    import transformers

    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(config).eval()
