"""Gradient (Simonyan et al. 2013, "vanilla" saliency): ``∂f_c / ∂x``, signed (Captum's
``Saliency(abs=False)``)."""

from __future__ import annotations

import torch

from causalxai.attribution.base import Attribution

__all__ = ["Gradient"]


class Gradient(Attribution):
    """The input gradient of the target score (:class:`~causalxai.attribution.base.Attribution`
    for the forward contract)."""

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``∂f_target / ∂x``.

        Args:
            inputs: ``(N, …)``.
            target: the explained class ``(N,)``, or ``(M, N)`` for ``models = M``.

        Returns:
            ``(N, …)``, or ``(M, N, …)`` for ``models = M``.
        """
        return self.input_gradients(inputs, target)
