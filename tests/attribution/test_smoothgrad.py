"""SmoothGrad of many zoo models at once against Captum, one model at a time."""

import pytest
import torch
from captum.attr import Saliency

from causalxai.attribution.smoothgrad import SmoothGrad
from causalxai.zoo.network import batched_forward


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_smoothgrad_matches_captum_on_the_same_noise(dtype, zoo_setup, prob, rel, tol):
    params, x, is_tanh, models, target = zoo_setup(dtype)
    ours = SmoothGrad(batched_forward(params, is_tanh), models=len(models)).attribute(
        x, target, samples=4, noise=0.15, generator=torch.Generator().manual_seed(3)
    )
    g = torch.Generator().manual_seed(3)
    sigma = 0.15 * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    noisy = [x + torch.randn(x.shape, generator=g, dtype=dtype) * sigma for _ in range(4)]
    for i, model in enumerate(models):
        sal = Saliency(prob(model))
        ref = sum(sal.attribute(xn, target=target[i], abs=False) for xn in noisy) / 4
        assert rel(ours[i], ref) < tol[dtype], i


def test_samples_per_pass_draws_captum_noise_tunnel_layout(zoo_setup, prob, rel):
    # all draws in one pass: sample i's k copies are rows i·k … i·k + k − 1 (NoiseTunnel's layout)
    _, x, _, models, target = zoo_setup(torch.float64)
    ours = SmoothGrad(prob(models[0])).attribute(
        x, target[0], samples=3, generator=torch.Generator().manual_seed(1), samples_per_pass=3
    )
    sigma = 0.15 * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    eps = torch.randn((x.shape[0] * 3, *x.shape[1:]), generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    noisy = (x.repeat_interleave(3, 0) + eps * sigma.repeat_interleave(3, 0)).view(x.shape[0], 3, *x.shape[1:])
    sal = Saliency(prob(models[0]))
    ref = sum(sal.attribute(noisy[:, j], target=target[0], abs=False) for j in range(3)) / 3
    assert rel(ours, ref) < 1e-12
