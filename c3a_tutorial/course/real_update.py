"""A real fine-tuning update, stored small: the target "MiniLM ΔW" of notebook 03's explorer.

``ΔW = W_after − W_before`` of one attention ``query`` layer (384 × 384) of the bundled all-MiniLM-L6-v2 after
*full* fine-tuning on the offline docstring task (notebook 05's CPU configuration by default), cropped to its
top-left ``size × size`` corner and stored as float16 in ``data/minilm_query_delta.npy``. The explorer and
notebook 03 read it with ``load_real_update()`` (the package ships a copy, ``course/results/``, for Colab and
pip installs, where there is no ``data/``; a test keeps the two identical);
``python -m c3a_tutorial.course.real_update`` remakes it, bit for bit (a few CPU
minutes; needs the ``finetune`` extra). ``data/README.md`` records how the stored file was made.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

FILE_NAME = "minilm_query_delta.npy"
# Notebook 05's CPU configuration (and make demo's): 256 training examples, 2 epochs, 32 tokens, seed 0.
DEFAULTS = {"layer": 5, "size": 192, "epochs": 2, "train_size": 256, "max_length": 32, "seed": 0}
BATCH_SIZE = 16  # FinetuneConfig's default, which make_real_update uses (tests/course/test_explorer.py checks)
STEPS = DEFAULTS["epochs"] * (DEFAULTS["train_size"] // BATCH_SIZE)  # optimizer steps of the stored update: 32


PACKAGE_COPY = Path(__file__).resolve().parent / "results" / FILE_NAME  # package data: what Colab gets


def real_update_path() -> Path:
    """Where the stored update lives: ``$C3A_DATA_DIR`` if set, else the checkout's ``data/`` folder."""
    folder = os.environ.get("C3A_DATA_DIR")
    return Path(folder) / FILE_NAME if folder else Path(__file__).resolve().parents[2] / "data" / FILE_NAME


def load_real_update(path: str | os.PathLike | None = None) -> np.ndarray:
    """The stored ``ΔW`` as a float64 ``(size, size)`` array: from ``path``, else the checkout's ``data/`` (or
    ``$C3A_DATA_DIR``), else the copy the package ships (a pip install or Colab has no ``data/``). A clear error
    says how to make it if none is there."""
    candidates = [Path(path)] if path is not None else [real_update_path()]
    if path is None and not os.environ.get("C3A_DATA_DIR"):
        candidates.append(PACKAGE_COPY)
    for candidate in candidates:
        if candidate.is_file():
            return np.load(candidate).astype(np.float64)
    raise FileNotFoundError(
        f"No stored fine-tuning update at {candidates[0]}. It ships with the repository's data/ folder and inside "
        "the package; to remake it, run `python -m c3a_tutorial.course.real_update` (needs the `finetune` extra, "
        "a few CPU minutes)."
    )


def pretrained_query_weight(layer: int = DEFAULTS["layer"]) -> np.ndarray:
    """``W_before``: the bundled all-MiniLM-L6-v2's attention ``query`` weight of ``layer`` (384 × 384, float64),
    read straight from its safetensors file (no transformers needed; the ``finetune`` extra's model package is)."""
    from safetensors import safe_open

    from ..experiments.backbone import default_model_path

    with safe_open(str(default_model_path() / "model.safetensors"), "np") as weights:
        return weights.get_tensor(f"encoder.layer.{layer}.attention.self.query.weight").astype(np.float64)


def relative_size(delta: np.ndarray | None = None, layer: int = DEFAULTS["layer"]) -> float:
    """``‖ΔW‖ / ‖W_before‖`` over the stored crop: how far fine-tuning moved this corner of the weight."""
    delta = load_real_update() if delta is None else delta
    before = pretrained_query_weight(layer)[: delta.shape[0], : delta.shape[1]]
    return float(np.linalg.norm(delta) / np.linalg.norm(before))


def make_real_update(
    layer: int = DEFAULTS["layer"],
    size: int = DEFAULTS["size"],
    epochs: int = DEFAULTS["epochs"],
    train_size: int = DEFAULTS["train_size"],
    max_length: int = DEFAULTS["max_length"],
    seed: int = DEFAULTS["seed"],
    progress: bool = False,
) -> tuple[np.ndarray, dict]:
    """Fully fine-tune MiniLM and return (``ΔW`` of ``layer``'s query, cropped to ``size × size``, float16; record).

    ``W_before`` is read from a freshly loaded copy of the same pretrained model, so nothing else is assumed.
    """
    from ..experiments.backbone import load_classifier
    from ..experiments.finetune import finetune

    result = finetune(
        method="full", epochs=epochs, train_size=train_size, max_length=max_length, seed=seed, progress=progress
    )
    before, _ = load_classifier(None, num_labels=result.data.num_labels, seed=seed)
    name = f"bert.encoder.layer.{layer}.attention.self.query.weight"
    w_before = dict(before.named_parameters())[name].detach().double().numpy()
    w_after = dict(result.model.named_parameters())[name].detach().double().numpy()
    delta = (w_after - w_before)[:size, :size]
    record = {
        "parameter": name,
        "crop": [size, size],
        "relative_update": float(np.linalg.norm(w_after - w_before) / np.linalg.norm(w_before)),
        "accuracy": result.record["accuracy"],
        "steps": result.record["steps"],
        "lr": result.record["lr"],
    }
    return delta.astype(np.float16), record


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description="Fully fine-tune MiniLM and store one query layer's ΔW (cropped, float16) for notebook 03.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--output", type=Path, default=real_update_path())
    args = parser.parse_args(argv)
    delta, record = make_real_update(**{k: getattr(args, k) for k in DEFAULTS}, progress=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, delta)
    print(f"wrote {args.output.name}: {record}")
    return args.output


if __name__ == "__main__":
    main()
