"""The base of the attribution methods: a forward function and its input gradients.

As in Captum, an attribution method is an algorithm over a forward function, not over a
model: ``Method(forward).attribute(inputs, target)``. The forward maps inputs to class
scores (logits, or probabilities when the caller composes a softmax), and ``target``
picks the explained class of every row of its output. Two kinds of forward are served:

* one model: ``forward(x (N, …)) -> (N, classes)``, ``target (N,)``; attributions are
  ``(N, …)``;
* ``models = M`` models at once on shared inputs (e.g. the zoo's grouped-convolution
  forward, :func:`causalxai.zoo.network.batched_forward`): ``forward(x (M, N, …)) -> (M,
  N, classes)``, ``target (M, N)``. The shared inputs ``(N, …)`` go in as ``M`` copies, one
  per model, so one backward pass gives every model's own input gradient: model ``m``'s output
  depends on its copy only. The copies are a view of the shared inputs (stride 0 along the
  models), so a forward can run its first layer once on the shared batch (the zoo's does) and
  must not write to its inputs in place. Attributions are ``(M, N, …)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["Attribution", "Forward", "selected_output"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def selected_output(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``Σ f_target``: the sum over rows of each row's target score, whose gradient is every
    row's own ``∂f_target / ∂input`` (rows never mix in a forward)."""
    return output.gather(-1, target[..., None]).sum()


class Attribution:
    """A forward function with its input gradients (module docstring for the contract).

    Args:
        forward: maps inputs to class scores ``(…, classes)``.
        models: ``None`` for a forward of one model; ``M`` for a forward of ``M`` models
            taking inputs ``(M, N, …)`` (the shared inputs are copied per model).
    """

    def __init__(self, forward: Forward, models: int | None = None) -> None:
        if models is not None and models < 1:
            raise ValueError(f"attribution: models must be None (one model) or >= 1, got {models}")
        self.forward = forward
        self.models = models

    def input_gradients(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``∂f_target / ∂x`` of every row: ``(N, …)``, or ``(M, N, …)`` for ``models = M``."""
        if self.models is None:
            x = inputs.detach().clone()
        else:  # M copies as a view of the shared inputs (stride 0): the batched forward may run
            # its first layer once on the shared batch (causalxai.zoo.network); the gradient is
            # still one per copy. A forward must not write to its inputs in place.
            x = inputs.detach().expand(self.models, *inputs.shape)
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(selected_output(self.forward(x), target), x)
        return g
