"""Notebook 04's exercise checkers: accept the right answer, name the typical wrong ones."""

import pytest
import torch

from c3a_tutorial import block_circulant
from c3a_tutorial.course import checks


def _spectra(grad_y, w):
    m, n, b = w.shape
    return torch.fft.rfft(grad_y.reshape(-1, m, b), dim=-1), torch.fft.rfft(w, dim=-1)


def input_grad(grad_y, w, conj=True):
    m, n, b = w.shape
    G, W = _spectra(grad_y, w)
    X = torch.einsum("tif,ijf->tjf", G, W.conj() if conj else W)
    return torch.fft.irfft(X, n=b, dim=-1).reshape(-1, n * b)


def kernel_grad(x, grad_y, b, conj_x=True, sum_tokens=True):
    G = torch.fft.rfft(grad_y.reshape(grad_y.shape[0], -1, b), dim=-1)
    X = torch.fft.rfft(x.reshape(x.shape[0], -1, b), dim=-1)
    X = X.conj() if conj_x else X
    if not sum_tokens:
        return torch.fft.irfft(torch.einsum("tif,tjf->tijf", G, X), n=b, dim=-1)
    return torch.fft.irfft(torch.einsum("tif,tjf->ijf", G, X), n=b, dim=-1)


def test_input_grad_checker(capsys):
    checks.check_c3a_input_grad(input_grad)
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(checks.ExerciseError, match="needs C\\(w\\)ᵀ .*W.conj\\(\\)"):
        checks.check_c3a_input_grad(lambda g, w: input_grad(g, w, conj=False))
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_c3a_input_grad(lambda g, w: input_grad(g, w)[:, :-1])
    with pytest.raises(checks.ExerciseError, match="return"):
        checks.check_c3a_input_grad(lambda g, w: None)
    with pytest.raises(checks.ExerciseError, match="differs from grad_y @ block_circulant"):
        checks.check_c3a_input_grad(lambda g, w: 2 * input_grad(g, w))


def test_kernel_grad_checker(capsys):
    checks.check_c3a_kernel_grad(kernel_grad)
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(checks.ExerciseError, match="correlation"):
        checks.check_c3a_kernel_grad(lambda x, g, b: kernel_grad(x, g, b, conj_x=False))
    with pytest.raises(checks.ExerciseError, match="Sum over the tokens"):
        checks.check_c3a_kernel_grad(lambda x, g, b: kernel_grad(x, g, b, sum_tokens=False))
    with pytest.raises(checks.ExerciseError, match="complex"):
        checks.check_c3a_kernel_grad(
            lambda x, g, b: torch.einsum(
                "tif,tjf->ijf",
                torch.fft.rfft(g.reshape(g.shape[0], -1, b), dim=-1),
                torch.fft.rfft(x.reshape(x.shape[0], -1, b), dim=-1).conj(),
            )
        )


def test_merged_weight_checker(capsys):
    checks.check_merged_weight(lambda layer: layer.base_layer.weight + layer.scale * block_circulant(layer.kernel))
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(checks.ExerciseError, match="forgot the scale"):
        checks.check_merged_weight(lambda layer: layer.base_layer.weight + block_circulant(layer.kernel))
    with pytest.raises(checks.ExerciseError, match="changed the layer's weight"):
        checks.check_merged_weight(
            lambda layer: layer.base_layer.weight.data.add_(layer.scale * block_circulant(layer.kernel.detach()))
        )
    with pytest.raises(checks.ExerciseError, match="base weight alone"):
        checks.check_merged_weight(lambda layer: layer.base_layer.weight.clone())
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_merged_weight(lambda layer: layer.base_layer.weight.T)
