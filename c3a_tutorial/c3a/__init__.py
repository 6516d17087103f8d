"""The method, in course order: one circulant → a block-circulant matrix and its FFT operator → the
adapter layers → putting them into a model → saving them → carrying them to and from PEFT.

    circulant.py        circulant(c), its eigenvalues, circulant(c) @ x with FFTs       (notebooks 01-02)
    dense_gather.py     the operator's dense path: ΔW by one gather, then GEMMs         (notebook 04, §13)
    path_choice.py      which path block_circulant_matmul(path="auto") takes, and why   (notebook 04, §13)
    block_circulant.py  block_circulant(w) and block_circulant_matmul(x, w)             (notebook 03)
    counting.py         parameters, ranks and block-size rules of C3A and LoRA          (notebook 03)
    layers.py           C3ALinear and LoRALinear                                        (notebook 04)
    methods.py          the registry: each adapter method declared once
    inject.py           add_adapters, counting, merge / unmerge / merge_and_unload      (notebooks 04-05)
    paths.py            output paths checked before the work that fills them
    adapter_file.py     save_adapter / load_adapter                                     (notebook 05)
    checkpoint.py       save_pretrained of an adapted model: Trainer's checkpoints
    peft_formats.py     each method's weights and settings in PEFT's format             (notebook 05)
    peft_io.py          export_to_peft / import_from_peft                               (notebook 05)

Imports run downward only: each file uses the ones above it (inject.py calls checkpoint.py lazily).
"""
