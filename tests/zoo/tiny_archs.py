"""Tiny architectures (not the Small CNN Zoo's) for the zoo-of-any-architecture tests."""

import torch
from torch import nn


def tiny_cnn(width: int = 4, n_classes: int = 10) -> nn.Module:
    """Two strided 3x3 convolutions (tanh, relu), global average pool, a linear layer."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, stride=2), nn.Tanh(),
        nn.Conv2d(width, width, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes),
    )


def tiny_bn_cnn(width: int = 3) -> nn.Module:
    """A convolution with batch norm (buffers, an integer one among them) before the classifier."""
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 10))


def tiny_mlp(side: int = 8, hidden: int = 6) -> nn.Module:
    """An MLP on flat inputs of side x side values."""
    return nn.Sequential(nn.Linear(side * side, hidden), nn.Tanh(), nn.Linear(hidden, 10))


class ItemNet(nn.Module):
    """A forward that reads a value out of a tensor (``.item()``): torch.func.vmap cannot batch it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 2.0 if float(self.lin.bias.sum().item()) > 0 else 1.0
        return self.lin(x.flatten(1)) * scale


def item_net() -> nn.Module:
    return ItemNet()
