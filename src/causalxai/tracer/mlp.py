"""A multi-layer perceptron target for tabular data sets (paper 004 App. D: "a multi-layer
feed-forward neural network classifier" on CIC-IDS 2017).

:func:`mlp` flattens its input (a tabular row arrives as a ``1 × 1 × F`` image,
:mod:`causalxai.data.custom`; any ``C × H × W`` input works) and runs Linear + ReLU blocks,
named so that TRACER observes them by name: ``flatten, fc1, relu1, fc2, relu2, …, fc<L+1>``
(the last ``Linear`` gives the logits). No dropout: the tabular sets are small and TRACER
analyses the model in eval mode anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

__all__ = ["MLP_HIDDEN", "mlp", "mlp_layers"]

#: the hidden widths of the built-in ``mlp``
MLP_HIDDEN = (64, 32, 16)


def mlp(in_channels: int = 1, n_classes: int = 2, n_inputs: int = 30,
        hidden: Sequence[int] = MLP_HIDDEN) -> nn.Sequential:
    """The tabular target: ``Flatten``, then ``Linear(n_inputs → h1), ReLU, …, Linear(h_L → n_classes)``.

    Args:
        in_channels: channels of the input (only checked: the input is flattened).
        n_classes: outputs (logits).
        n_inputs: values per sample, ``C·H·W`` (the F features of a tabular row).
        hidden: widths of the hidden layers.

    Returns:
        A named ``nn.Sequential`` (:func:`mlp_layers` lists the names TRACER observes by default).
    """
    if int(n_inputs) < 1 or int(n_classes) < 2 or int(in_channels) < 1 or not hidden or min(hidden) < 1:
        raise ValueError(f"mlp: needs n_inputs >= 1, n_classes >= 2, in_channels >= 1 and positive hidden widths, "
                         f"got n_inputs={n_inputs}, n_classes={n_classes}, in_channels={in_channels}, hidden={hidden}")
    widths = [int(n_inputs), *(int(h) for h in hidden)]
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for i in range(len(hidden)):
        layers += [(f"fc{i + 1}", nn.Linear(widths[i], widths[i + 1])), (f"relu{i + 1}", nn.ReLU())]
    layers.append((f"fc{len(hidden) + 1}", nn.Linear(widths[-1], int(n_classes))))
    return nn.Sequential(OrderedDict(layers))


def mlp_layers(hidden: Sequence[int] = MLP_HIDDEN) -> list[str]:
    """Every Linear and ReLU of :func:`mlp` in forward order (``fc1, relu1, …, fc<L+1>``)."""
    return [n for i in range(len(hidden)) for n in (f"fc{i + 1}", f"relu{i + 1}")] + [f"fc{len(hidden) + 1}"]
