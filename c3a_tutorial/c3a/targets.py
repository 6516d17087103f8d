"""Which layers to adapt and which head to train, when the user does not name them (as PEFT chooses them).

* ``target_modules="all-linear"``: every ``nn.Linear`` / ``Conv1D`` but the output layer (the model's output
  embeddings, e.g. ``lm_head``, and a task head such as ``classifier`` or ``score``), as PEFT's ``"all-linear"``.
* ``target_modules`` left out: the attention query and value of the model's architecture family, by its
  ``config.model_type`` (PEFT's defaults for LoRA: BERT's ``query``/``value``, Llama's ``q_proj``/``v_proj``,
  GPT-2's ``c_attn``, T5's ``q``/``v``, ...), else the first family of names the model has.
* ``trainable_modules`` left out: the freshly initialised head of a ``...ForSequenceClassification``,
  ``...ForTokenClassification``, ``...ForImageClassification`` or ``...ForQuestionAnswering`` model, as PEFT's
  ``task_type`` opens it.
"""

from __future__ import annotations

from torch import nn

from .layers import is_supported_base

ALL_LINEAR = "all-linear"

# The query and value projections by config.model_type (the families of PEFT's LoRA defaults).
_BY_MODEL_TYPE = {
    **dict.fromkeys(["bert", "roberta", "xlm-roberta", "camembert", "electra", "albert", "vit", "deit", "layoutlm",
                     "mpnet", "ernie", "megatron-bert", "data2vec-text", "bert-generation"], ("query", "value")),
    **dict.fromkeys(["llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "bart", "mbart",
                     "opt", "gptj", "whisper", "blenderbot", "pegasus", "marian", "m2m_100", "starcoder2",
                     "olmo", "phi"], ("q_proj", "v_proj")),
    **dict.fromkeys(["deberta-v2"], ("query_proj", "value_proj")),
    **dict.fromkeys(["distilbert"], ("q_lin", "v_lin")),
    **dict.fromkeys(["gpt2"], ("c_attn",)),
    **dict.fromkeys(["t5", "mt5", "longt5", "umt5"], ("q", "v")),
    **dict.fromkeys(["gpt_neox", "bloom", "falcon"], ("query_key_value",)),
}  # fmt: skip
# For a model without a known model_type: the first family whose every name is there.
_NAME_FAMILIES = [("query", "value"), ("q_proj", "v_proj"), ("q_lin", "v_lin"), ("query_proj", "value_proj"),
                  ("q", "v"), ("c_attn",), ("query_key_value",)]  # fmt: skip

# Heads a task creates, by the end of the transformers class name (PEFT's task types and the heads they open).
# DistilBERT's pre_classifier is new too (PEFT's modules_to_save "classifier" opens it, by suffix).
TASK_HEADS = {
    "ForSequenceClassification": ("pre_classifier", "classifier", "score"),
    "ForTokenClassification": ("classifier", "score"),
    "ForImageClassification": ("classifier",),
    "ForQuestionAnswering": ("qa_outputs",),
}
_OUTPUT_HEADS = ("pre_classifier", "classifier", "score", "qa_outputs", "lm_head")


def _last_parts(model: nn.Module) -> set[str]:
    return {name.rpartition(".")[2] for name, module in model.named_modules() if is_supported_base(module)}


def default_target_modules(model: nn.Module) -> list[str] | None:
    """The query/value names of ``model``'s family that it has, or ``None`` when no family fits."""
    have = _last_parts(model)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    known = _BY_MODEL_TYPE.get(model_type)
    if known and set(known) <= have:
        return list(known)
    return next((list(family) for family in _NAME_FAMILIES if set(family) <= have), None)


def output_layer_names(model: nn.Module) -> set[str]:
    """The model's output layers: its output embeddings (``lm_head``) and the modules of a task head."""
    names = set()
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    for name, module in model.named_modules():
        if output is not None and module is output:
            names.add(name)
        if name and any(part in _OUTPUT_HEADS for part in name.split(".")[:2]):
            names.add(name)  # a head (``classifier``) and the layers inside it (RoBERTa's ``classifier.dense``)
    return names


def all_linear_names(model: nn.Module) -> list[str]:
    """Every supported linear layer of ``model`` but its output layers: what ``"all-linear"`` targets."""
    excluded = output_layer_names(model)
    return [name for name, module in model.named_modules() if is_supported_base(module) and name not in excluded]


def task_head_names(model: nn.Module) -> list[str]:
    """The head a task class creates freshly (``classifier``, ``score``, ``qa_outputs``), by module name; ``[]``
    for a model that is not a transformers task model."""
    class_name = type(model).__name__
    heads = next((h for suffix, h in TASK_HEADS.items() if class_name.endswith(suffix)), ())
    return [name for name, _ in model.named_children() if name in heads]
