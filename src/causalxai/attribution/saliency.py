"""Saliency maps of many zoo models in one pass (paper 000 §3.1 and App. A.3).

Every method explains, for each model ``m`` and probe image ``x``, the model's output
for a target class ``c[m, x]`` (the model's own prediction by default): either the
softmax probability (``output="prob"``, what the paper's PAIR-saliency code
differentiated, the zoo's Keras models ending in a softmax) or the logit.

* Gradient (Simonyan et al. 2013): ``∂f_c / ∂x``.
* SmoothGrad (Smilkov et al. 2017): the mean gradient over ``n`` noisy copies
  ``x + ε``, ``ε ~ N(0, σ²)``, ``σ = noise · (max x − min x)`` per image. The same noise
  draws serve every model, so all models are explained on the same inputs.
* Integrated Gradients (Sundararajan et al. 2017): ``(x − x') · Σ_k w_k ∂f_c/∂x (x' + α_k
  (x − x'))`` from the baseline ``x'`` (zeros). ``rule="pair"`` is PAIR saliency's rule
  (``α = linspace(0, 1, n)``, ``w = 1/n``); the Riemann rules are Captum's.
* Grad-CAM (Selvaraju et al. 2016) on the last conv layer (activation included):
  ``ReLU(Σ_k a_k A_k)``, ``a_k`` the spatial mean of ``∂f_c / ∂A_k``, upsampled
  bilinearly to the input size.

All models of a chunk are stacked (:func:`causalxai.zoo.network.batched_logits`, grouped
convolutions): one backward pass gives every model's input gradients, because each
model's output depends on its own copy of the input only. Loops run over noise samples
and integration steps, never over models.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from causalxai.zoo.network import batched_logits

__all__ = [
    "ig_rule",
    "predict",
    "gradient",
    "smoothgrad",
    "integrated_gradients",
    "grad_cam",
    "METHODS",
]

METHODS = ("gradient", "smoothgrad", "integrated_gradients", "grad_cam")
Params = Mapping[str, torch.Tensor]


def _outputs(logits: torch.Tensor, output: str) -> torch.Tensor:
    if output == "prob":
        return torch.softmax(logits, dim=-1)
    if output == "logit":
        return logits
    raise ValueError(f"explain.output must be 'prob' or 'logit', got {output!r}")


@torch.no_grad()
def predict(params: Params, x: torch.Tensor, activation: str | torch.Tensor) -> torch.Tensor:
    """Softmax outputs ``(M, N, classes)`` of every model on images ``x (N, C, H, W)``."""
    return torch.softmax(batched_logits(params, x, activation), dim=-1)


def _input_gradients(
    params: Params, x: torch.Tensor, activation: str | torch.Tensor, target: torch.Tensor, output: str
) -> torch.Tensor:
    """``∂f_target / ∂x`` for every model: ``x`` is ``(N, C, H, W)`` shared by all models or
    ``(M, N, C, H, W)``; returns ``(M, N, C, H, W)``."""
    m = params["conv1.weight"].shape[0]
    xm = (x.expand(m, *x.shape) if x.dim() == 4 else x).detach().clone().requires_grad_(True)
    out = _outputs(batched_logits(params, xm, activation), output)
    (g,) = torch.autograd.grad(out.gather(-1, target[..., None]).sum(), xm)
    return g


def gradient(
    params: Params, x: torch.Tensor, activation: str | torch.Tensor, target: torch.Tensor, output: str = "prob"
) -> torch.Tensor:
    """Vanilla gradient ``(M, N, C, H, W)`` of each model's target output."""
    return _input_gradients(params, x, activation, target, output)


def smoothgrad(
    params: Params,
    x: torch.Tensor,
    activation: str | torch.Tensor,
    target: torch.Tensor,
    *,
    samples: int = 25,
    noise: float = 0.15,
    generator: torch.Generator | None = None,
    output: str = "prob",
) -> torch.Tensor:
    """SmoothGrad ``(M, N, C, H, W)``: mean gradient over ``samples`` noisy copies."""
    if samples < 1:
        raise ValueError(f"explain.smoothgrad.samples must be >= 1, got {samples}")
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, *([1] * (x.dim() - 1)))
    sigma = noise * span
    total = None
    for _ in range(samples):
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * sigma
        g = _input_gradients(params, x + eps, activation, target, output)
        total = g if total is None else total + g
    return total / samples


def ig_rule(steps: int, rule: str = "pair", dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Integration points ``α`` and weights ``w`` of an Integrated Gradients rule.

    ``pair``: PAIR saliency's ``linspace(0, 1, steps)`` with weights ``1/steps``;
    ``riemann_left``, ``riemann_right``, ``riemann_middle``, ``riemann_trapezoid``:
    Captum's Riemann rules of the same names.
    """
    if steps < 1 or (rule in ("pair", "riemann_trapezoid") and steps < 2):
        raise ValueError(f"explain.integrated_gradients.steps={steps} is too few for rule {rule!r}")
    k = torch.arange(steps, dtype=dtype)
    if rule == "pair":
        return torch.linspace(0, 1, steps, dtype=dtype), torch.full((steps,), 1.0 / steps, dtype=dtype)
    if rule == "riemann_left":
        return k / steps, torch.full((steps,), 1.0 / steps, dtype=dtype)
    if rule == "riemann_right":
        return (k + 1) / steps, torch.full((steps,), 1.0 / steps, dtype=dtype)
    if rule == "riemann_middle":
        return (k + 0.5) / steps, torch.full((steps,), 1.0 / steps, dtype=dtype)
    if rule == "riemann_trapezoid":
        # as Captum defines it: points linspace(0, 1, n), weights 1/n with both ends
        # halved (they sum to (n-1)/n, not 1)
        w = torch.full((steps,), 1.0 / steps, dtype=dtype)
        w[0] = w[-1] = 0.5 / steps
        return torch.linspace(0, 1, steps, dtype=dtype), w
    raise ValueError(
        f"explain.integrated_gradients.rule {rule!r} is unknown: use pair, riemann_left, riemann_right, "
        "riemann_middle or riemann_trapezoid"
    )


def integrated_gradients(
    params: Params,
    x: torch.Tensor,
    activation: str | torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = 25,
    rule: str = "pair",
    baseline: torch.Tensor | None = None,
    output: str = "prob",
) -> torch.Tensor:
    """Integrated Gradients ``(M, N, C, H, W)`` from ``baseline`` (zeros by default)."""
    base = torch.zeros_like(x) if baseline is None else baseline.to(x)
    alphas, weights = ig_rule(steps, rule, x.dtype)
    total = None
    for a, w in zip(alphas.tolist(), weights.tolist()):
        g = _input_gradients(params, base + a * (x - base), activation, target, output) * w
        total = g if total is None else total + g
    return total * (x - base)


def grad_cam(
    params: Params, x: torch.Tensor, activation: str | torch.Tensor, target: torch.Tensor, output: str = "prob"
) -> torch.Tensor:
    """Grad-CAM on the last conv layer, upsampled to the input: ``(M, N, 1, H, W)``."""
    x = x.detach().requires_grad_(True)  # so the graph reaches the conv features
    logits, feats = batched_logits(params, x, activation, return_last_conv=True)  # feats (M, N, K, h, w)
    out = _outputs(logits, output)
    (g,) = torch.autograd.grad(out.gather(-1, target[..., None]).sum(), feats)
    alpha = g.mean(dim=(3, 4), keepdim=True)
    cam = torch.relu((alpha * feats).sum(dim=2, keepdim=True)).detach()  # (M, N, 1, h, w)
    m, n = cam.shape[:2]
    up = F.interpolate(cam.reshape(m * n, 1, *cam.shape[3:]), size=x.shape[-2:], mode="bilinear", align_corners=False)
    return up.view(m, n, 1, *x.shape[-2:])
