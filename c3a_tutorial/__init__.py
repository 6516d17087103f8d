"""c3a_tutorial: C3A (Circular Convolution Adaptation) from circulant matrices to fine-tuning.

Use it on a model (any ``nn.Module`` with ``nn.Linear`` or GPT-2 ``Conv1D`` layers)::

    from c3a_tutorial import add_adapters, print_trainable_parameters, save_adapter, merge_and_unload

    add_adapters(model, method="c3a", target_modules=["query", "value"], block_size=16,
                 trainable_modules=["classifier"])
    print_trainable_parameters(model)
    # train: the default scale 1/d_in wants lr ≈ d_in × a LoRA-like lr (see add_adapters), or scale=1.0
    save_adapter(model, "adapter.safetensors")   # load_adapter(fresh_model, ...) reads it back
    model = merge_and_unload(model)              # a plain model again: save_pretrained works as usual

``export_to_peft`` / ``import_from_peft`` carry adapters to and from Hugging Face PEFT.

Conventions, shared by the code, the notebooks and the plots:

* ``circulant(c)`` equals ``scipy.linalg.circulant(c)``: ``c`` is the first *column* and
  ``C[i, j] = c[(i - j) mod n]``. Its eigenvalues are ``fft(c)``, and
  ``circulant(c) @ x == ifft(fft(c) * fft(x))``.
* A layer maps ``d_in`` features to ``d_out``. A C3A kernel ``w`` has shape ``(d_out // b, d_in // b, b)``
  and ``block_circulant(w)`` is the ``(d_out, d_in)`` matrix whose block ``(i, j)`` is ``circulant(w[i, j])``.
* ``block_circulant_matmul(x, w) == x @ block_circulant(w).T``, computed with FFTs.
* ``C3ALinear``: ``y = base(x) + scale · x @ ΔWᵀ`` with ``ΔW = block_circulant(w)`` and ``scale = 1 / d_in``
  by default. ``LoRALinear``: ``ΔW = (alpha / r) · B A``.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version

from .c3a.adapter_file import adapter_state_dict, load_adapter, save_adapter
from .c3a.block_circulant import block_circulant, block_circulant_matmul, block_circulant_matmul_reference
from .c3a.circulant import circulant, circulant_eigenvalues, circulant_matvec_fft
from .c3a.counting import (
    block_circulant_rank,
    c3a_max_rank,
    c3a_parameter_count,
    lora_max_rank,
    lora_parameter_count,
    lora_rank_for_budget,
    matrix_rank,
    suggest_block_size,
    valid_block_sizes,
)
from .c3a.inject import (
    adapter_layers,
    adapter_parameter_groups,
    add_adapters,
    disable_adapters,
    format_trainable_parameters,
    merge_adapters,
    merge_and_unload,
    print_trainable_parameters,
    trainable_parameters,
    unload,
    unmerge_adapters,
)
from .c3a.layers import C3ALinear, LoRALinear
from .c3a.peft_io import export_to_peft, import_from_peft
from .course.fitting import FitResult, fit_update
from .experiments.device import pick_device
from .experiments.measure import environment_summary

try:
    __version__ = _package_version("c3a-tutorial")  # one version string: pyproject.toml's
except PackageNotFoundError:  # pragma: no cover - a source tree on sys.path that was never pip-installed
    __version__ = "0+unknown"

__all__ = [
    # circulant matrices (notebooks 01-02)
    "circulant",
    "circulant_eigenvalues",
    "circulant_matvec_fft",
    # block-circulant matrices (notebook 03)
    "block_circulant",
    "block_circulant_matmul",
    "block_circulant_matmul_reference",
    # counting and ranks
    "valid_block_sizes",
    "suggest_block_size",
    "c3a_parameter_count",
    "lora_parameter_count",
    "c3a_max_rank",
    "lora_max_rank",
    "lora_rank_for_budget",
    "matrix_rank",
    "block_circulant_rank",
    # layers and models (notebook 04)
    "C3ALinear",
    "LoRALinear",
    "add_adapters",
    "adapter_layers",
    "adapter_parameter_groups",
    "trainable_parameters",
    "format_trainable_parameters",
    "print_trainable_parameters",
    "merge_adapters",
    "unmerge_adapters",
    "merge_and_unload",
    "unload",
    "disable_adapters",
    "adapter_state_dict",
    "save_adapter",
    "load_adapter",
    "pick_device",
    "environment_summary",
    # expressivity experiments (notebook 03, make demo)
    "fit_update",
    "FitResult",
    # Hugging Face PEFT interoperability (notebook 05)
    "export_to_peft",
    "import_from_peft",
]
