"""Integrated Gradients (Sundararajan et al. 2017): ``(x − x') · Σ_k w_k ∂f_c/∂x (x' + α_k
(x − x'))`` from the baseline ``x'`` (zeros by default), with the step rule of
:func:`ig_rule`."""

from __future__ import annotations

import numpy as np
import torch

from causalxai.attribution.base import Attribution

__all__ = ["IG_RULES", "IntegratedGradients", "ig_rule"]

IG_RULES = ("pair", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def ig_rule(steps: int, rule: str = "pair", dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Integration points ``α`` and weights ``w`` of an Integrated Gradients rule.

    ``pair``: PAIR saliency's ``linspace(0, 1, steps)`` with weights ``1/steps``;
    ``riemann_left``, ``riemann_right``, ``riemann_middle``, ``riemann_trapezoid``,
    ``gausslegendre``: Captum's rules of the same names (Gauss-Legendre: numpy's nodes
    and weights mapped from [-1, 1] to [0, 1], Captum's default).
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
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return torch.tensor(0.5 * (1 + nodes), dtype=dtype), torch.tensor(0.5 * weights, dtype=dtype)
    raise ValueError(
        f"explain.integrated_gradients.rule {rule!r} is unknown: use one of {', '.join(IG_RULES)}"
    )


class IntegratedGradients(Attribution):
    """Integrated Gradients over a forward (:class:`~causalxai.attribution.base.Attribution`
    for the contract); one forward per integration step."""

    def attribute(
        self,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        steps: int = 25,
        rule: str = "pair",
        baseline: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Integrated Gradients of the target score from ``baseline``.

        Args:
            inputs: ``(N, …)``.
            target: the explained class ``(N,)``, or ``(M, N)`` for ``models = M``.
            steps: integration points.
            rule: one of :data:`IG_RULES` (:func:`ig_rule`).
            baseline: ``x'``, broadcastable to ``inputs`` (default zeros).

        Returns:
            ``(N, …)``, or ``(M, N, …)`` for ``models = M``.
        """
        x = inputs.detach()
        base = torch.zeros_like(x) if baseline is None else baseline.to(x)
        alphas, weights = ig_rule(steps, rule, x.dtype)
        total = None
        for a, w in zip(alphas.tolist(), weights.tolist()):
            g = self.input_gradients(base + a * (x - base), target) * w
            total = g if total is None else total + g
        return total * (x - base)
