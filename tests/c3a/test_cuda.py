"""The operator and the layers on CUDA (skipped without one; ``make gpu-check`` runs them on a GPU machine).

``gradcheck`` in float64 for both inputs, odd and even ``b``, under the GPU's choices and the previous ones; the FFT
path, the dense gather and "auto" against the dense product in float32 at a realistic size; gradgradcheck of the
dense gather; a layer under bf16 autocast.
"""

import pytest
import torch

from c3a_tutorial import C3ALinear, block_circulant, block_circulant_matmul
from c3a_tutorial.c3a import block_circulant as bc

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CHOICES = {"gpu": bc.GPU_CHOICES, "before": bc.BEFORE_GPU_CHOICES, "cpu": bc.CPU_CHOICES}


@pytest.mark.parametrize("preset", CHOICES)
@pytest.mark.parametrize("shape", [(3, 2, 8), (2, 3, 7), (9, 2, 4), (1, 1, 9)], ids=str)
def test_cuda_gradcheck_float64(shape, preset):  # pragma: no cover - runs only where there is a GPU
    m, n, b = shape
    kernel = torch.randn(m, n, b, dtype=torch.float64, device="cuda", requires_grad=True)
    x = torch.randn(5, n * b, dtype=torch.float64, device="cuda", requires_grad=True)
    with bc.use_choices("cuda", CHOICES[preset]):
        assert torch.autograd.gradcheck(lambda x, k: block_circulant_matmul(x, k, path="fft", scale=0.7), (x, kernel))


# Each FFT preset, then the dense gather and what "auto" picks (the dense gather at this size, see path_choice).
REAL_SIZE_CASES = [(preset, "fft") for preset in CHOICES] + [("gpu", "dense"), ("gpu", "auto")]


@pytest.mark.parametrize("path", ["dense", "auto"])
@pytest.mark.parametrize("shape", [(3, 2, 8), (2, 3, 7), (1, 1, 9)], ids=str)
def test_cuda_other_paths_gradcheck_and_gradgradcheck_float64(shape, path):  # pragma: no cover
    m, n, b = shape
    kernel = torch.randn(m, n, b, dtype=torch.float64, device="cuda", requires_grad=True)
    x = torch.randn(5, n * b, dtype=torch.float64, device="cuda", requires_grad=True)

    def f(x, k):
        return block_circulant_matmul(x, k, path=path, scale=0.7)

    assert torch.autograd.gradcheck(f, (x, kernel)) and torch.autograd.gradgradcheck(f, (x, kernel))


@pytest.mark.parametrize("preset,path", REAL_SIZE_CASES)
def test_cuda_each_path_matches_dense_at_a_real_size(preset, path):  # pragma: no cover
    kernel = torch.randn(8, 8, 128, device="cuda", requires_grad=True)
    x = torch.randn(4096, 1024, device="cuda", requires_grad=True)
    g = torch.randn(4096, 1024, device="cuda")
    with bc.use_choices("cuda", CHOICES[preset]):
        out = block_circulant_matmul(x, kernel, path=path, scale=1 / 1024)
        grads = torch.autograd.grad(out, (x, kernel), g)
    x64, k64 = x.double(), kernel.double()
    dense = (x64 @ block_circulant(k64).T) / 1024
    want = (g.double() @ block_circulant(k64)) / 1024
    torch.testing.assert_close(out.double(), dense, atol=1e-4 * dense.abs().max().item(), rtol=0)
    torch.testing.assert_close(grads[0].double(), want, atol=1e-4 * want.abs().max().item(), rtol=0)
    (ref,) = torch.autograd.grad((x64 @ block_circulant(k64).T / 1024 * g.double()).sum(), (k64,))
    torch.testing.assert_close(grads[1].double(), ref, atol=1e-4 * ref.abs().max().item(), rtol=0)


def test_cuda_layer_under_bf16_autocast_trains_in_float32():  # pragma: no cover
    layer = C3ALinear(torch.nn.Linear(256, 256), block_size=64, init_weights="gaussian").cuda()
    x = torch.randn(32, 256, device="cuda")
    with torch.no_grad():
        exact = layer.base_layer(x) + layer.adapter_output(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), exact, atol=0.05 * exact.abs().max().item(), rtol=0.02)
    y.float().sum().backward()
    assert layer.kernel.grad is not None and layer.kernel.grad.dtype == torch.float32
    assert torch.isfinite(layer.kernel.grad).all()
