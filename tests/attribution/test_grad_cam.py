"""Grad-CAM of many zoo models at once against Captum, one model at a time."""

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam

from causalxai.attribution.grad_cam import GradCam, layer_forward
from causalxai.zoo.network import batched_forward


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_grad_cam_matches_captum_layer_grad_cam(dtype, zoo_setup, prob, rel, tol):
    params, x, is_tanh, models, target = zoo_setup(dtype)
    ours = GradCam(batched_forward(params, is_tanh, last_conv=True)).attribute(x, target)
    assert ours.shape == (len(models), x.shape[0], 1, 28, 28)
    for i, model in enumerate(models):
        layer = LayerGradCam(prob(model), model.act3).attribute(x, target=target[i], relu_attributions=True)
        ref = LayerAttribution.interpolate(layer, (28, 28), interpolate_mode="bilinear").detach()
        if float(ref.abs().max()) == 0:
            assert float(ours[i].abs().max()) == 0
        else:
            assert rel(ours[i], ref) < tol[dtype], i


def test_layer_forward_of_a_module_matches_the_stacked_zoo(zoo_setup, prob):
    params, x, is_tanh, models, target = zoo_setup(torch.float64)
    stacked = GradCam(batched_forward(params, is_tanh, last_conv=True)).attribute(x, target)
    one = GradCam(layer_forward(prob(models[3]), models[3].act3)).attribute(x, target[3])
    torch.testing.assert_close(one, stacked[3])
