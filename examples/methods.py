"""Example explanation methods for ``explain.methods`` / ``tracer.reliability.methods``.

A method is ``function(forward, inputs, target, **attribute) -> attributions``:

* ``forward``: a one-model forward ``(N, C, H, W) -> (N, classes)`` (class probabilities or
  logits, as the study explains them);
* ``inputs``: ``(N, C, H, W)``; ``target``: the explained class of every input ``(N,)``;
* returns attributions of the inputs' shape (or ``(N, H, W)``).

Use it as ``explain: {methods: [gradient, "methods:gradient_times_input"]}`` with this folder
on ``PYTHONPATH`` (README, "Your own explanation method").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gradient_times_input(forward, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient × input (Shrikumar et al. 2016): ``x ⊙ ∂f_target/∂x``, the map Captum's
    ``InputXGradient`` computes."""
    x = inputs.detach().clone().requires_grad_(True)
    scores = forward(x).gather(1, target[:, None]).sum()  # rows never mix: each row's own gradient
    (grad,) = torch.autograd.grad(scores, x)
    return x.detach() * grad


def edge_detector(forward, inputs: torch.Tensor, target: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    """A model-independent baseline: the Sobel gradient magnitude of each image (Adebayo et
    al. 2018 "Sanity checks": an edge detector resembles many saliency maps). It ignores the
    model and the target, so its maps carry no effect of a hyperparameter; ``sigma`` (unused
    unless > 0) blurs the image first with a 3x3 box."""
    x = inputs.detach()
    if sigma > 0:
        x = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    k = torch.stack([kx, kx.T])[:, None].repeat(x.shape[1], 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(x, k, padding=1, groups=x.shape[1]).view(x.shape[0], x.shape[1], 2, *x.shape[2:])
    return g.pow(2).sum(2).sqrt()
