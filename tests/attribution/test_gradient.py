"""Gradient of many zoo models at once against Captum, one model at a time."""

import pytest
import torch
from captum.attr import Saliency

from causalxai.attribution.gradient import Gradient
from causalxai.zoo.network import batched_forward


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_matches_captum_saliency(dtype, zoo_setup, prob, rel, tol):
    params, x, is_tanh, models, target = zoo_setup(dtype)
    ours = Gradient(batched_forward(params, is_tanh), models=len(models)).attribute(x, target)
    for i, model in enumerate(models):
        ref = Saliency(prob(model)).attribute(x, target=target[i], abs=False)
        assert rel(ours[i], ref) < tol[dtype], i


def test_logit_output_and_bad_settings(zoo_setup, rel):
    params, x, is_tanh, models, target = zoo_setup(torch.float64)
    ours = Gradient(batched_forward(params, is_tanh, output="logit"), models=len(models)).attribute(x, target)
    ref = Saliency(models[1]).attribute(x, target=target[1], abs=False)
    assert rel(ours[1], ref) < 1e-6
    with pytest.raises(ValueError, match="explain.output"):
        Gradient(batched_forward(params, is_tanh, output="softmax"), models=len(models)).attribute(x, target)


def test_one_model_forward(zoo_setup, prob, rel):
    _, x, _, models, target = zoo_setup(torch.float64)
    ours = Gradient(prob(models[2])).attribute(x, target[2])
    assert ours.shape == x.shape
    assert rel(ours, Saliency(prob(models[2])).attribute(x, target=target[2], abs=False)) < 1e-12
