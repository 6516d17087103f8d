"""Why C3A's learning rate looks huge: a scale on ΔW trades one-for-one against Adam's learning rate.

C3A's update is ``ΔW = s · C(w)`` (``s = 1/d_in`` by default). Train the kernel with Adam at learning rate
``η``. The kernel's gradient is ``s`` times the gradient at scale 1 for the same ``ΔW``, and Adam's step
``η · m̂ / (√v̂ + ε)`` does not depend on the gradient's size (up to ``ε``), so the kernel moves by the same
``η · u`` and ``ΔW`` by ``s · η · u``: exactly what scale 1 does at learning rate ``s · η``. By induction, from
the same start ``ΔW₀`` (zero init: ``s · 0 = 0``), the two runs follow the same path of ``ΔW``. What breaks it:
a non-zero init (``ΔW₀`` differs by the factor ``s``), weight decay (AdamW shrinks the kernel by ``η · λ`` per
step, not ``s · η · λ``), plain SGD (its step is proportional to the gradient), and Adam's ``ε``, which acts
like ``ε / s`` at scale ``s`` — unless ``ε`` is scaled with ``s`` too (``eps_scaled``): then the rule is exact, which
is what notebook 05's training loop (and the package's) does for the adapters' optimizer group.

``scale_lr_runs`` trains one ``C3ALinear`` on a fixed regression task twice (scale ``s`` at ``η``, scale 1 at
``s · η``) and reports how far apart the two ``ΔW`` paths are.
"""

from __future__ import annotations

import torch

from ..c3a.layers import C3ALinear


def _task(d_in: int, d_out: int, tokens: int, seed: int, dtype):
    gen = torch.Generator().manual_seed(seed)
    base = torch.nn.Linear(d_in, d_out).to(dtype)
    with torch.no_grad():
        base.weight.copy_(torch.randn(d_out, d_in, generator=gen, dtype=dtype) / d_in**0.5)
        base.bias.zero_()
    x = torch.randn(tokens, d_in, generator=gen, dtype=dtype)
    target_update = torch.randn(d_out, d_in, generator=gen, dtype=dtype) * 0.1 / d_in**0.5
    y = x @ (base.weight + target_update).T.detach()
    return base, x, y


def train_path(
    scale: float,
    lr: float,
    steps: int = 30,
    d_in: int = 384,
    d_out: int = 384,
    block_size: int = 24,
    tokens: int = 64,
    seed: int = 0,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    eps: float = 1e-8,
    eps_scaled: bool = False,
    init_weights: str = "zeros",
    dtype=torch.float64,
) -> dict:
    """Train a ``C3ALinear`` kernel; return its loss after every step and ``ΔW`` after every step.

    ``eps_scaled``: Adam's ``ε`` is ``eps × scale`` (in ΔW's units ``eps`` whatever the scale), else ``eps``."""
    base, x, y = _task(d_in, d_out, tokens, seed, dtype)
    torch.manual_seed(seed + 1)  # the same non-zero init for every scale, when one is asked for
    layer = C3ALinear(base, block_size=block_size, scale=scale, init_weights=init_weights)
    if optimizer == "adam":
        opt = torch.optim.AdamW(
            [layer.kernel], lr=lr, weight_decay=weight_decay, eps=eps * scale if eps_scaled else eps
        )
    elif optimizer == "sgd":
        opt = torch.optim.SGD([layer.kernel], lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer={optimizer!r}: choose 'adam' or 'sgd'.")
    losses, deltas = [], []
    for _ in range(steps):
        loss = (layer(x) - y).pow(2).sum(-1).mean()  # squared error per token, averaged over tokens
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        deltas.append(layer.delta_weight().detach().clone())
    return {"losses": losses, "deltas": deltas, "scale": scale, "lr": lr}


def path_gap(run_a: dict, run_b: dict) -> float:
    """The largest relative distance ``‖ΔW_a(t) − ΔW_b(t)‖ / ‖ΔW_b(t)‖`` over the steps."""
    return max(((a - b).norm() / b.norm()).item() for a, b in zip(run_a["deltas"], run_b["deltas"], strict=True))


def scale_lr_runs(scale: float = 1 / 384, lr: float = 3.0, **kwargs) -> dict:
    """Scale ``s`` at ``lr`` against scale 1 at ``s · lr`` (and, for contrast, scale 1 at ``lr``).

    Returns both runs' losses, the path gap, and the gap of the un-rescaled contrast run.
    ``kwargs`` go to ``train_path`` (``steps``, ``weight_decay``, ``init_weights``, ``optimizer``, ``eps``,
    ``eps_scaled``...).
    """
    scaled = train_path(scale, lr, **kwargs)
    rescaled = train_path(1.0, scale * lr, **kwargs)
    return {
        "scale": scale,
        "lr": lr,
        "effective_lr": scale * lr,
        "losses_scaled": scaled["losses"],
        "losses_rescaled": rescaled["losses"],
        "gap": path_gap(scaled, rescaled),
        "final_update_norm": scaled["deltas"][-1].norm().item(),
    }
