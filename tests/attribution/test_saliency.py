"""Vectorized saliency maps against Captum, one model at a time."""

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

from causalxai.attribution.saliency import gradient, grad_cam, ig_rule, integrated_gradients, predict, smoothgrad
from causalxai.zoo.network import ZooCNN, unflatten, zoo_layout

M, N = 5, 6
ACTS = ["relu", "tanh", "relu", "tanh", "relu"]


def _setup(dtype):
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.normal(scale=0.3, size=(M, 4970)), dtype=dtype)
    x = torch.tensor(rng.uniform(-1, 1, size=(N, 1, 28, 28)), dtype=dtype)
    layout = zoo_layout(1)
    params = unflatten(w, layout)
    is_tanh = torch.tensor([a == "tanh" for a in ACTS])
    models = [ZooCNN.from_flat(w[i].float().numpy(), layout, ACTS[i]).to(dtype) for i in range(M)]
    for i, model in enumerate(models):  # exact weights in the requested precision
        model.load_state_dict({k: v[i] for k, v in params.items()})
    target = predict(params, x, is_tanh).argmax(-1)  # (M, N): each model's own prediction
    return params, x, is_tanh, models, target


def _prob(model):
    return lambda inp: torch.softmax(model(inp), dim=-1)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


TOL = {torch.float64: 1e-6, torch.float32: 1e-3}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_matches_captum_saliency(dtype):
    params, x, is_tanh, models, target = _setup(dtype)
    ours = gradient(params, x, is_tanh, target)
    for i, model in enumerate(models):
        ref = Saliency(_prob(model)).attribute(x, target=target[i], abs=False)
        assert _rel(ours[i], ref) < TOL[dtype], i


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_integrated_gradients_matches_captum(dtype):
    params, x, is_tanh, models, target = _setup(dtype)
    for rule in ("riemann_trapezoid", "riemann_left", "riemann_middle"):
        ours = integrated_gradients(params, x, is_tanh, target, steps=9, rule=rule)
        for i, model in enumerate(models):
            ref = IntegratedGradients(_prob(model)).attribute(x, target=target[i], n_steps=9, method=rule)
            assert _rel(ours[i], ref) < TOL[dtype], (rule, i)


def test_pair_rule_is_uniform_weights_on_both_ends():
    params, x, is_tanh, models, target = _setup(torch.float64)
    ours = integrated_gradients(params, x, is_tanh, target, steps=4, rule="pair")
    alphas, weights = ig_rule(4, "pair")
    np.testing.assert_allclose(alphas.numpy(), [0, 1 / 3, 2 / 3, 1], rtol=1e-15)
    assert weights.tolist() == [0.25] * 4
    for i, model in enumerate(models):
        sal = Saliency(_prob(model))
        ref = sum(sal.attribute(a * x, target=target[i], abs=False) for a in alphas.tolist()) / 4 * x
        assert _rel(ours[i], ref) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_smoothgrad_matches_captum_on_the_same_noise(dtype):
    params, x, is_tanh, models, target = _setup(dtype)
    ours = smoothgrad(params, x, is_tanh, target, samples=4, noise=0.15, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    sigma = 0.15 * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    noisy = [x + torch.randn(x.shape, generator=g, dtype=dtype) * sigma for _ in range(4)]
    for i, model in enumerate(models):
        sal = Saliency(_prob(model))
        ref = sum(sal.attribute(xn, target=target[i], abs=False) for xn in noisy) / 4
        assert _rel(ours[i], ref) < TOL[dtype], i


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_grad_cam_matches_captum_layer_grad_cam(dtype):
    params, x, is_tanh, models, target = _setup(dtype)
    ours = grad_cam(params, x, is_tanh, target)
    assert ours.shape == (M, N, 1, 28, 28)
    for i, model in enumerate(models):
        layer = LayerGradCam(_prob(model), model.act3).attribute(x, target=target[i], relu_attributions=True)
        ref = LayerAttribution.interpolate(layer, (28, 28), interpolate_mode="bilinear").detach()
        if float(ref.abs().max()) == 0:
            assert float(ours[i].abs().max()) == 0
        else:
            assert _rel(ours[i], ref) < TOL[dtype], i


def test_logit_output_and_bad_settings():
    params, x, is_tanh, models, target = _setup(torch.float64)
    ours = gradient(params, x, is_tanh, target, output="logit")
    ref = Saliency(models[1]).attribute(x, target=target[1], abs=False)
    assert _rel(ours[1], ref) < 1e-6
    with pytest.raises(ValueError, match="explain.output"):
        gradient(params, x, is_tanh, target, output="softmax")
    with pytest.raises(ValueError, match="rule"):
        ig_rule(5, "simpson")
