"""Every exercise checker of the course, one module per notebook.

``from c3a_tutorial.course import checks`` then ``checks.check_kernel_from_first_row(my_fn)``: each checker
prints a short confirmation or raises ``ExerciseError`` with what is wrong and what to do about it.
"""

from .common import ExerciseError
from .guard import snapshot
from .nb01_circulant import (
    check_kernel_from_first_row,
    check_kernel_with_rank,
    check_low_rank_approximation,
    check_singular_presets,
)
from .nb02_fft import check_circulant_lstsq, check_fft_convolve, check_kernel_fit
from .nb03_block_circulant import (
    check_block_kernel_with_rank,
    check_block_size_choice,
    check_c3a_projection,
    check_cheapest_block_size,
    check_lora_embedding,
    check_same_budget_rank,
)
from .nb04_layer import TransposedLinear, check_c3a_function, check_c3a_module
from .nb05_finetuning import check_c3a_energy_rank, check_optimizer_groups

snapshot()  # what the checkers rely on, before any learner code runs: guard.verify_guarded compares against it

__all__ = [
    "ExerciseError",
    "check_kernel_from_first_row",
    "check_kernel_with_rank",
    "check_low_rank_approximation",
    "check_singular_presets",
    "check_fft_convolve",
    "check_circulant_lstsq",
    "check_kernel_fit",
    "check_lora_embedding",
    "check_same_budget_rank",
    "check_cheapest_block_size",
    "check_block_size_choice",
    "check_c3a_projection",
    "check_block_kernel_with_rank",
    "check_c3a_function",
    "check_c3a_module",
    "check_c3a_energy_rank",
    "TransposedLinear",
    "check_optimizer_groups",
]
