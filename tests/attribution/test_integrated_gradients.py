"""Integrated Gradients of many zoo models at once against Captum, one model at a time."""

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG, Saliency

from causalxai.attribution.integrated_gradients import IntegratedGradients, ig_rule
from causalxai.zoo.network import batched_forward


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_integrated_gradients_matches_captum(dtype, zoo_setup, prob, rel, tol):
    params, x, is_tanh, models, target = zoo_setup(dtype)
    ig = IntegratedGradients(batched_forward(params, is_tanh), models=len(models))
    for rule in ("riemann_trapezoid", "riemann_left", "riemann_middle"):
        ours = ig.attribute(x, target, steps=9, rule=rule)
        for i, model in enumerate(models):
            ref = CaptumIG(prob(model)).attribute(x, target=target[i], n_steps=9, method=rule)
            assert rel(ours[i], ref) < tol[dtype], (rule, i)


def test_gausslegendre_matches_captum(zoo_setup, prob, rel, tol):
    _, x, _, models, target = zoo_setup(torch.float64)
    ours = IntegratedGradients(prob(models[0])).attribute(x, target[0], steps=7, rule="gausslegendre")
    ref = CaptumIG(prob(models[0])).attribute(x, target=target[0], n_steps=7, method="gausslegendre")
    assert rel(ours, ref) < tol[torch.float64]


def test_pair_rule_is_uniform_weights_on_both_ends(zoo_setup, prob, rel):
    params, x, is_tanh, models, target = zoo_setup(torch.float64)
    ours = IntegratedGradients(batched_forward(params, is_tanh), models=len(models)).attribute(
        x, target, steps=4, rule="pair"
    )
    alphas, weights = ig_rule(4, "pair")
    np.testing.assert_allclose(alphas.numpy(), [0, 1 / 3, 2 / 3, 1], rtol=1e-15)
    assert weights.tolist() == [0.25] * 4
    for i, model in enumerate(models):
        sal = Saliency(prob(model))
        ref = sum(sal.attribute(a * x, target=target[i], abs=False) for a in alphas.tolist()) / 4 * x
        assert rel(ours[i], ref) < 1e-6


def test_bad_rule():
    with pytest.raises(ValueError, match="rule"):
        ig_rule(5, "simpson")
