"""The paper's own compressed models C1-C3 (paper 004 Table 2) as a reference set.

Table 2 lists for MNIST (1×28×28 inputs, 10 classes) three compressed AlexNets of 11,567,786,
4,749,994 and 66,218 parameters (25.1, 18.3 and 13.6 M multiply-accumulates). They follow
exactly from one shared trunk and three heads:

* trunk: ``Conv2d(1→64, 5×5, padding 1)`` + ReLU (28 → 26), ``Conv2d(64→32, 3×3, padding 1)``
  + ReLU at 26×26, a pooling to 32×12×12 (Table 2 gives only the shape; here
  ``MaxPool2d(3, stride 2)``: (26 − 3)/2 + 1 = 12, no parameters);
* C1 head: ``4608 → 2048 → 1024 → 10`` (ReLU between), C2: ``4608 → 1024 → 10``,
  C3: ``4608 → 10``; as in the original AlexNet's classifier a ``Dropout(dropout)`` precedes
  each hidden Linear (no parameters, no MACs).

Parameters: trunk 1,664 + 18,464; C3 adds 46,090 → 66,218; C2 adds 4,719,616 + 10,250 →
4,749,994; C1 adds 9,439,232 + 2,098,176 + 10,250 → 11,567,786. MACs: trunk 1,081,600 +
12,460,032; heads 46,080 (C3), 4,728,832 (C2), 11,552,768 (C1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

__all__ = ["PAPER_INPUT_SHAPE", "PAPER_TABLE2", "applies", "paper_table2_models"]

#: the input shape Table 2's parameter counts hold for
PAPER_INPUT_SHAPE = (1, 28, 28)

#: Table 2's numbers: parameters and MACs (millions, as printed)
PAPER_TABLE2 = {"C1": (11_567_786, 25.1), "C2": (4_749_994, 18.3), "C3": (66_218, 13.6)}

_HEADS = {"C1": (2048, 1024), "C2": (1024,), "C3": ()}


def applies(input_shape: Sequence[int], n_classes: int) -> bool:
    """Whether Table 2's models fit: 1×28×28 inputs (MNIST-sized) and 10 classes."""
    return tuple(int(v) for v in input_shape) == PAPER_INPUT_SHAPE and int(n_classes) == 10


def paper_table2_models(n_classes: int = 10, dropout: float = 0.5) -> dict[str, nn.Sequential]:
    """Paper 004 Table 2's C1, C2, C3 (module docstring), freshly initialised from the global
    RNG (seed it), in training mode.

    Args:
        n_classes: output classes (Table 2: 10).
        dropout: the Dropout before each hidden Linear (the target model's ``dropout``).

    Returns:
        ``{"C1": model, "C2": model, "C3": model}``.
    """
    out = {}
    for name, hidden in _HEADS.items():
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(1, 64, kernel_size=5, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(64, 32, kernel_size=3, padding=1)), ("relu2", nn.ReLU()),
            ("pool", nn.MaxPool2d(kernel_size=3, stride=2)), ("flatten", nn.Flatten()),
        ]
        width = 32 * 12 * 12
        for k, h in enumerate(hidden, start=1):
            layers += [(f"drop{k}", nn.Dropout(dropout)), (f"fc{k}", nn.Linear(width, h)), (f"relu_fc{k}", nn.ReLU())]
            width = h
        layers.append(("out", nn.Linear(width, int(n_classes))))
        out[name] = nn.Sequential(OrderedDict(layers))
    return out
