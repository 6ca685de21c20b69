"""Grad-CAM (Selvaraju et al. 2016): ``ReLU(Σ_k a_k A_k)`` over the channels ``k`` of a
layer's activation ``A``, ``a_k`` the spatial mean of ``∂f_c / ∂A_k``, upsampled
bilinearly to the input size (Captum's ``LayerGradCam`` with ``relu_attributions`` and
``LayerAttribution.interpolate``).

The method needs the layer's activation next to the output, so its forward returns both:
``forward(x) -> (activation (…, K, h, w), output (…, classes))``, the leading dimensions of
both those of ``target``. :func:`layer_forward` builds one for an ``nn.Module`` (or any forward
calling it) and one of its layers (a forward hook); the zoo's many-models-at-once forward returns its last conv layer
itself (:func:`causalxai.zoo.network.batched_forward` with ``last_conv=True``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from causalxai.attribution.base import selected_output

__all__ = ["GradCam", "LayerForward", "layer_forward"]

LayerForward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def layer_forward(forward: Callable[[torch.Tensor], torch.Tensor], layer: nn.Module) -> LayerForward:
    """``x -> (activation, forward(x))``: the output of ``layer`` (a module that ``forward``
    runs exactly once, e.g. a layer of the model it calls) next to the forward's output."""

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _mod, _inp, out: seen.append(out))
        try:
            out = forward(x)
        finally:
            handle.remove()
        if len(seen) != 1:
            raise ValueError(f"grad_cam: the layer ran {len(seen)} times in one forward; choose a layer that runs once")
        return seen[0], out

    return run


class GradCam:
    """Grad-CAM over a forward that returns ``(activation, output)`` (module docstring).

    Args:
        forward: ``x -> (activation (…, K, h, w), output (…, classes))``.
    """

    def __init__(self, forward: LayerForward) -> None:
        self.forward = forward

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Grad-CAM of the target score, upsampled to the input's last two dimensions.

        Args:
            inputs: ``(N, C, H, W)``, passed to the forward as they are.
            target: the explained class, the leading dimensions of the output (``(N,)``,
                or ``(M, N)`` for a forward of ``M`` models).

        Returns:
            ``(*target.shape, 1, H, W)``, non-negative.
        """
        x = inputs.detach().requires_grad_(True)  # so the graph reaches the layer
        feats, out = self.forward(x)
        (g,) = torch.autograd.grad(selected_output(out, target), feats)
        alpha = g.mean(dim=(-2, -1), keepdim=True)
        cam = torch.relu((alpha * feats).sum(dim=-3, keepdim=True)).detach()  # (…, 1, h, w)
        lead = cam.shape[:-3]
        up = F.interpolate(cam.reshape(-1, 1, *cam.shape[-2:]), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return up.view(*lead, 1, *x.shape[-2:])
