"""Every exercise checker of the course, one module per notebook.

``from c3a_tutorial.course import checks`` then ``checks.check_circulant_builder(my_fn)``: each checker
prints a short confirmation or raises ``ExerciseError`` with what is wrong and what to do about it.
"""

from .common import ExerciseError
from .nb01_circulant import check_circulant_builder, check_kernel_with_rank, check_low_rank_approximation
from .nb02_fft import check_circulant_lstsq, check_fft_matvec, check_kernel_fit
from .nb03_block_circulant import (
    check_block_kernel_with_rank,
    check_block_size_choice,
    check_c3a_projection,
    check_same_budget_rank,
)
from .nb04_layer import check_c3a_function, check_c3a_module
from .nb05_finetuning import check_energy_rank

__all__ = [
    "ExerciseError",
    "check_circulant_builder",
    "check_kernel_with_rank",
    "check_low_rank_approximation",
    "check_fft_matvec",
    "check_circulant_lstsq",
    "check_kernel_fit",
    "check_same_budget_rank",
    "check_block_size_choice",
    "check_c3a_projection",
    "check_block_kernel_with_rank",
    "check_c3a_function",
    "check_c3a_module",
    "check_energy_rank",
]
