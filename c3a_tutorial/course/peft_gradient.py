"""PEFT's C3A input gradient: the mechanism of its error, and whether it matters (notebook 04).

PEFT's ``BlockCircularConvolution`` (``peft/tuners/c3a/utils.py``, checked in 0.21.2) computes the forward
``y = fft(ifft(x) · fft(w))`` per block and, in its custom backward, ``∂L/∂x = fft(fft(g) · ifft(w))``. The
adjoint of the forward is ``fft(ifft(g) · conj(fft(w)))`` = ``fft(b · ifft(g) · ifft(w))``: the backward takes
``fft(g)`` where ``b · ifft(g)`` belongs. Since ``fft(g)[k] / b = ifft(g)[-k]``, that is the *correct* adjoint
applied to each block of ``g`` index-reversed, ``rev(g)[k] = g[-k mod b]``. For ``b ≤ 2`` the reversal is the
identity, so the two agree.

Two measurements, both with the installed ``peft``:

* ``input_gradient_mechanism``: float64, small shapes. PEFT's ``∂L/∂x`` against the dense reference
  ``g Mᵀ`` (``M``: the dense matrix of PEFT's own forward), and against ``rev(g) Mᵀ``; its ``∂L/∂w``
  against torch's autograd through the same forward.
* ``kernel_gradient_cosines``: MiniLM with PEFT's C3A on ``query``/``value`` of every layer, dropout off;
  the cosine between the kernel gradients PEFT's backward gives and the true ones (torch's autograd through
  PEFT's own forward), per layer, with the kernels set to random updates of a given size ``‖ΔW‖/‖W‖``.
"""

from __future__ import annotations

import contextlib
import math

import torch


class _NoSave:
    """Stands in for autograd's ``ctx`` so that PEFT's forward runs as plain, autograd-differentiated code."""

    def save_for_backward(self, *tensors):
        pass


def _peft_operator():
    from peft.tuners.c3a.utils import BlockCircularConvolution

    return BlockCircularConvolution


def peft_forward_autograd(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """PEFT's C3A forward, differentiated by torch's autograd instead of PEFT's custom backward."""
    return _peft_operator().forward(_NoSave(), x, w)


def reverse_blocks(g: torch.Tensor, b: int) -> torch.Tensor:
    """Reverse the indices of every length-``b`` block of the last dimension: ``rev(g)[k] = g[-k mod b]``."""
    index = (-torch.arange(b, device=g.device)) % b
    return g.reshape(*g.shape[:-1], -1, b)[..., index].reshape(g.shape)


def input_gradient_mechanism(block_sizes=(1, 2, 3, 4, 5, 8), d: int = 24 * 5, tokens: int = 5, seed: int = 0):
    """One row per block size: relative errors of PEFT's gradients against references, in float64.

    ``d`` (in = out features) must be a multiple of every block size. Each row holds ``b``,
    ``x_vs_dense`` (PEFT ``∂L/∂x`` against ``g Mᵀ``), ``x_vs_reversed`` (against ``rev(g) Mᵀ``),
    ``rev_is_identity`` and ``w_vs_autograd`` (PEFT ``∂L/∂w`` against autograd through PEFT's forward).
    """
    op = _peft_operator()
    rows = []
    for b in block_sizes:
        if d % b:
            raise ValueError(f"d = {d} is not a multiple of the block size {b}.")
        gen = torch.Generator().manual_seed(seed + b)
        x = torch.randn(tokens, d, dtype=torch.float64, generator=gen, requires_grad=True)
        w = torch.randn(d // b, d // b, b, dtype=torch.float64, generator=gen, requires_grad=True)
        g = torch.randn(tokens, d, dtype=torch.float64, generator=gen)
        grad_x, grad_w = torch.autograd.grad(op.apply(x, w), (x, w), g)
        with torch.no_grad():
            dense = peft_forward_autograd(torch.eye(d, dtype=torch.float64), w)  # y = x @ dense
        ref_w = torch.autograd.grad(peft_forward_autograd(x, w), w, g)[0]
        rev_g = reverse_blocks(g, b)

        def rel(got, want):
            return ((got - want).norm() / want.norm()).item()

        rows.append(
            {
                "b": b,
                "x_vs_dense": rel(grad_x, g @ dense.T),
                "x_vs_reversed": rel(grad_x, rev_g @ dense.T),
                "rev_is_identity": bool(torch.equal(rev_g, g)),
                "w_vs_autograd": rel(grad_w, ref_w),
            }
        )
    return rows


@contextlib.contextmanager
def _true_backward():
    """Inside: PEFT's C3A layers use torch's autograd through PEFT's own forward (the true gradient)."""
    import peft.tuners.c3a.layer as layer_module

    original = layer_module.BlockCircularConvolution

    class _Autograd:
        apply = staticmethod(peft_forward_autograd)

    layer_module.BlockCircularConvolution = _Autograd
    try:
        yield
    finally:
        layer_module.BlockCircularConvolution = original


def _c3a_layers(peft_model):
    from peft.tuners.c3a.layer import C3ALinear as PeftC3ALinear

    return {name: m for name, m in peft_model.named_modules() if isinstance(m, PeftC3ALinear)}


@torch.no_grad()
def set_update_size(layer, ratio: float, generator: torch.Generator) -> float:
    """Fill a PEFT C3A layer's kernel with a random direction such that ``‖ΔW‖_F = ratio · ‖W‖_F``.

    PEFT's ``ΔW`` is ``C(w)ᵀ / d_in`` per block and every kernel entry appears ``b`` times in its block, so
    ``‖ΔW‖_F = √b · ‖w‖ / d_in``. Returns the ratio measured from ``get_delta_weight``.
    """
    kernel = layer.c3a_kernel["default"]
    weight = layer.get_base_layer().weight
    b = kernel.shape[-1]
    if ratio == 0:
        kernel.zero_()
        return 0.0
    z = torch.randn(kernel.shape, generator=generator, dtype=torch.float64)
    target = ratio * weight.double().norm() * layer.in_features / math.sqrt(b)
    kernel.copy_((z * target / z.norm()).to(kernel.dtype))
    return (layer.get_delta_weight("default").norm() / weight.norm()).item()


def _kernel_grads(model, layers, batch, labels):
    logits = model(**batch).logits
    loss = torch.nn.functional.cross_entropy(logits, labels)
    params = [layer.c3a_kernel["default"] for layer in layers.values()]
    return dict(zip(layers, torch.autograd.grad(loss, params), strict=True))


def _layer_index(name: str) -> int:
    parts = name.split(".")
    return int(parts[parts.index("layer") + 1])


def kernel_gradient_cosines(
    ratios=(0.0, 0.01, 0.1, 0.3, 1.0),
    block_size: int = 64,
    n_texts: int = 16,
    max_length: int = 32,
    seed: int = 0,
    peft_default_init: bool = True,
    model=None,
    tokenizer=None,
) -> dict:
    """Cosine similarity between PEFT's and the true C3A kernel gradients of each transformer layer.

    MiniLM (``load_classifier``, 8 labels) with PEFT's C3A on ``query`` and ``value`` of all layers, in eval
    mode (dropout off: both backward passes differentiate the same function). For each ``ratio``, every
    kernel gets a random direction with ``‖ΔW‖/‖W‖ = ratio``; the loss is the cross-entropy of ``n_texts``
    training docstrings. A layer's gradient is its ``query`` and ``value`` kernel gradients together.
    With ``peft_default_init`` one more setting uses PEFT's own default init (``xavier_uniform``).

    Returns ``{"settings": [{"label", "ratio", "cosines": [one per layer, bottom first],
    "relative_errors": [...]}], "layers": n, ...}``. A ``model`` passed in is used in place and restored
    (``unload``) at the end.
    """
    import peft

    from ..experiments.backbone import load_classifier
    from ..experiments.data import load_dataset

    data = load_dataset("stdlib", seed=0)
    if model is None:
        model, tokenizer = load_classifier(num_labels=data.num_labels, seed=seed)
    texts, labels = zip(*data.train[:n_texts], strict=True)
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    labels = torch.tensor(labels)

    settings = [(f"‖ΔW‖/‖W‖ = {r:g}", r) for r in ratios]
    if peft_default_init:
        settings.append(("PEFT default init (xavier_uniform)", None))
    config = peft.C3AConfig(block_size=block_size, target_modules=["query", "value"], init_weights=True)
    peft_model = peft.get_peft_model(model, config)
    peft_model.eval()
    layers = _c3a_layers(peft_model)
    out = []
    try:
        for label, ratio in settings:
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            measured = []
            for layer in layers.values():
                if ratio is None:
                    layer.reset_c3a_parameters("default", "xavier_uniform")  # what C3AConfig() gives by default
                    w = layer.get_base_layer().weight
                    measured.append((layer.get_delta_weight("default").norm() / w.norm()).item())
                else:
                    measured.append(set_update_size(layer, ratio, gen))
            peft_grads = _kernel_grads(peft_model, layers, batch, labels)
            with _true_backward():
                true_grads = _kernel_grads(peft_model, layers, batch, labels)
            n_layers = 1 + max(_layer_index(name) for name in layers)
            cosines, errors = [], []
            for index in range(n_layers):
                names = [name for name in layers if _layer_index(name) == index]
                got = torch.cat([peft_grads[n].flatten() for n in names]).double()
                want = torch.cat([true_grads[n].flatten() for n in names]).double()
                cosines.append(torch.nn.functional.cosine_similarity(got, want, dim=0).item())
                errors.append(((got - want).norm() / want.norm()).item())
            out.append(
                {
                    "label": label,
                    "ratio": ratio if ratio is not None else sum(measured) / len(measured),
                    "cosines": cosines,
                    "relative_errors": errors,
                }
            )
    finally:
        peft_model.unload()  # the caller's model again, without PEFT's layers
    return {
        "model": "all-MiniLM-L6-v2",
        "peft_version": peft.__version__,
        "block_size": block_size,
        "target_modules": ["query", "value"],
        "n_texts": n_texts,
        "max_length": max_length,
        "seed": seed,
        "layers": len(out[0]["cosines"]),
        "settings": out,
    }


def format_cosines(result: dict) -> str:
    """A table: one row per setting, one column per transformer layer (bottom first)."""
    n = result["layers"]
    head = f"{'setting':<38}" + "".join(f"  layer {i}" for i in range(n))
    lines = [head, "-" * len(head)]
    for s in result["settings"]:
        lines.append(f"{s['label']:<38}" + "".join(f"  {c:7.4f}" for c in s["cosines"]))
    return "\n".join(lines)


def main(argv=None) -> dict:
    """``python -m c3a_tutorial.course.peft_gradient --output FILE``: the stored measurement, several seeds."""
    import argparse
    import json
    import time

    from ..experiments.measure import environment_summary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.01, 0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--n-texts", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--output", help="write the JSON record here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    record = {
        "what": "cosine(PEFT's C3A kernel gradient, the true one) per transformer layer, random updates of size "
        "‖ΔW‖/‖W‖; produced by python -m c3a_tutorial.course.peft_gradient",
        "mechanism": input_gradient_mechanism(),
        "runs": [
            kernel_gradient_cosines(
                ratios=tuple(args.ratios),
                block_size=args.block_size,
                n_texts=args.n_texts,
                max_length=args.max_length,
                seed=seed,
            )
            for seed in args.seeds
        ],
        "environment": environment_summary(),
    }
    record["seconds"] = round(time.perf_counter() - start, 1)
    for run in record["runs"]:
        print(f"seed {run['seed']}:\n{format_cosines(run)}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, ensure_ascii=False)
            f.write("\n")
    return record


if __name__ == "__main__":  # pragma: no cover
    main()
