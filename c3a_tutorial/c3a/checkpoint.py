"""``save_pretrained`` of a transformers model with adapters: a checkpoint that is right whoever reads it.

A checkpoint of the adapted model's ``state_dict`` alone holds ``query.base_layer.weight`` and ``query.kernel``;
a plain ``from_pretrained`` finds no ``query.weight`` there and re-initialises the layer at random, with only a
warning. So ``save_adapted_pretrained`` writes, in one ``model.safetensors``:

* the adapted model's ``state_dict`` (base weights, adapter weights, the head), which ``load_state_dict`` of the
  same adapted model restores exactly. That is what Hugging Face's ``Trainer`` does with a checkpoint when it
  resumes (``resume_from_checkpoint``) or loads the best one (``load_best_model_at_end``);
* for every adapted layer, the *merged* weight (and the bias) under the plain names (``query.weight``), which
  is what a plain ``from_pretrained`` reads: the merged model, as ``merge_and_unload`` gives it (it warns about
  the adapter tensors it does not use). An adapter layer skips these copies when a checkpoint is loaded into
  it (``AdapterLinear._load_from_state_dict``).

Beside it: ``config.json`` (and ``generation_config.json``) as transformers writes them, and the adapter alone in
``c3a_adapter.safetensors`` (``save_adapter``'s file: ``load_adapter(fresh_base_model, path)`` reads it).
"""

from __future__ import annotations

import copy
import json
import os

import torch
from safetensors.torch import save_file
from torch import nn

from .adapter_file import _write_atomically, adapter_metadata, save_adapter
from .inject import adapter_layers
from .paths import check_output

WEIGHTS_NAME = "model.safetensors"  # transformers' SAFE_WEIGHTS_NAME: what Trainer and from_pretrained look for
ADAPTER_NAME = "c3a_adapter.safetensors"


def _write_weights(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    save_file(tensors, path, metadata=metadata)


def _tied_adapted_weights(model: nn.Module) -> list[str]:
    """Adapted layers whose base weight is shared with another parameter (GPT-2's lm_head and wte)."""
    owners: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        owners[id(param)] = owners.get(id(param), 0) + 1
    return [name for name, layer in adapter_layers(model).items() if owners.get(id(layer.base_layer.weight), 0) > 1]


def merged_copies(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each adapted layer's merged weight and its bias, under the plain layer's names (``query.weight``)."""
    copies = {}
    with torch.no_grad():
        for name, layer in adapter_layers(model).items():
            weight = layer.base_layer.weight
            copies[f"{name}.weight"] = weight + layer._delta_as_weight().to(weight.dtype)
            if getattr(layer.base_layer, "bias", None) is not None:
                copies[f"{name}.bias"] = layer.base_layer.bias
    return copies


def save_adapted_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike,
    state_dict: dict[str, torch.Tensor] | None = None,
    is_main_process: bool = True,
    **kwargs,
) -> None:
    """Write ``model`` (with adapters) so that it reloads exactly into the adapted model, and as its merged
    version into a plain ``from_pretrained``. ``state_dict`` and ``is_main_process`` as in transformers
    (``Trainer`` passes them); other transformers options (``safe_serialization``, ``max_shard_size``, ...)
    are accepted and not used: the checkpoint is always one safetensors file."""
    merged = [name for name, layer in adapter_layers(model).items() if layer.merged]
    if merged:
        raise ValueError(
            f"Adapters {merged[:3]} are merged: call unmerge_adapters(model) before save_pretrained (a merged "
            "layer's base weight already holds ΔW, and reloading it as the base would add ΔW twice), or "
            "merge_and_unload(model).save_pretrained(directory) for a plain model. Nothing was written."
        )
    if not is_main_process:
        return
    save_directory = os.fspath(save_directory)
    check_output(save_directory, "directory", what="the checkpoint", create_parents=True)
    os.makedirs(save_directory, exist_ok=True)
    state = model.state_dict() if state_dict is None else state_dict
    # Cloned: tied tensors (GPT-2's lm_head and embeddings) share memory, which safetensors refuses to write.
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}
    tensors.update({k: v.detach().cpu().clone().contiguous() for k, v in merged_copies(model).items()})
    metadata = {"format": "pt", "c3a_tutorial": json.dumps(adapter_metadata(model), sort_keys=True)}
    _write_atomically(os.path.join(save_directory, WEIGHTS_NAME), _write_weights, tensors, metadata)
    config = getattr(model, "config", None)
    if config is not None:
        config = copy.deepcopy(config)
        config.architectures = [type(model).__name__]  # as transformers' save_pretrained records it
        if _tied_adapted_weights(model) and getattr(config, "tie_word_embeddings", False):
            # The merged lm_head differs from the embeddings it was tied to: a re-tie on load would drop it.
            config.tie_word_embeddings = False
        config.save_pretrained(save_directory)
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and getattr(model, "can_generate", lambda: False)():
        generation_config.save_pretrained(save_directory)
    save_adapter(model, os.path.join(save_directory, ADAPTER_NAME))
