"""SmoothGrad (Smilkov et al. 2017): the mean gradient over ``n`` noisy copies ``x + ε``,
``ε ~ N(0, σ²)``, with ``σ = noise · (max x − min x)`` per sample (PAIR saliency's
convention: the noise is a share of each input's range)."""

from __future__ import annotations

import torch

from causalxai.attribution.base import Attribution

__all__ = ["SmoothGrad"]


class SmoothGrad(Attribution):
    """SmoothGrad over a forward (:class:`~causalxai.attribution.base.Attribution` for the contract).

    For ``models = M`` the same noise draws serve every model, so all models are explained
    on the same noisy inputs.
    """

    def attribute(
        self,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        samples: int = 25,
        noise: float = 0.15,
        generator: torch.Generator | None = None,
        samples_per_pass: int = 1,
    ) -> torch.Tensor:
        """Mean input gradient over ``samples`` noisy copies of ``inputs``.

        Args:
            inputs: ``(N, …)``.
            target: the explained class ``(N,)``, or ``(M, N)`` for ``models = M``.
            samples: noise draws ``n`` (PAIR default 25).
            noise: ``σ`` as a share of each sample's ``max − min`` (PAIR default 0.15).
            generator: source of the noise (default: the global RNG of the inputs' device).
            samples_per_pass: draws evaluated in one forward. A pass draws its noise as one
                ``(N · k, …)`` tensor, the ``k`` copies of a sample next to each other (the
                layout of Captum's ``NoiseTunnel``), so the draws, not their distribution,
                depend on it: 1 (one draw per pass, least memory) or ``samples`` (Captum's
                single pass).

        Returns:
            ``(N, …)``, or ``(M, N, …)`` for ``models = M``.
        """
        if samples < 1:
            raise ValueError(f"explain.smoothgrad.samples must be >= 1, got {samples}")
        if samples_per_pass < 1:
            raise ValueError(f"smoothgrad: samples_per_pass must be >= 1, got {samples_per_pass}")
        x = inputs.detach()
        span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, *([1] * (x.dim() - 1)))
        sigma = noise * span
        axis = 0 if self.models is None else 1  # the sample axis of the gradients
        total = None
        for start in range(0, samples, samples_per_pass):
            k = min(samples_per_pass, samples - start)
            shape = (x.shape[0] * k, *x.shape[1:])
            eps = (torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
                   * sigma.repeat_interleave(k, 0))
            g = self.input_gradients(x.repeat_interleave(k, 0) + eps, target.repeat_interleave(k, -1))
            if k > 1:
                g = g.unflatten(axis, (x.shape[0], k)).sum(axis + 1)
            total = g if total is None else total + g
        return total / samples
