"""Shared builders of the attribution tests: a small zoo, stacked and as one module per model."""

import numpy as np
import pytest
import torch

from causalxai.zoo.network import ZooCNN, batched_forward, unflatten, zoo_layout

M, N = 5, 6
ACTS = ["relu", "tanh", "relu", "tanh", "relu"]


def _setup(dtype):
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.normal(scale=0.3, size=(M, 4970)), dtype=dtype)
    x = torch.tensor(rng.uniform(-1, 1, size=(N, 1, 28, 28)), dtype=dtype)
    layout = zoo_layout(1)
    params = unflatten(w, layout)
    is_tanh = torch.tensor([a == "tanh" for a in ACTS])
    models = [ZooCNN.from_flat(w[i].float().numpy(), layout, ACTS[i]).to(dtype) for i in range(M)]
    for i, model in enumerate(models):  # exact weights in the requested precision
        model.load_state_dict({k: v[i] for k, v in params.items()})
    with torch.no_grad():
        target = batched_forward(params, is_tanh)(x).argmax(-1)  # (M, N): each model's own prediction
    return params, x, is_tanh, models, target


def _prob(model):
    return lambda inp: torch.softmax(model(inp), dim=-1)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.fixture
def zoo_setup():
    """``dtype -> (params, x, is_tanh, models, target)``: M = 5 stacked zoo models, the same
    models as ``ZooCNN`` modules, N = 6 images and each model's predicted class."""
    return _setup


@pytest.fixture
def prob():
    """``model -> forward``: the softmax output of one module (what the zoo explains)."""
    return _prob


@pytest.fixture
def rel():
    """``(ours, reference) -> max |ours − reference| / max |reference|``."""
    return _rel


@pytest.fixture
def tol():
    """Relative tolerance against Captum per dtype."""
    return {torch.float64: 1e-6, torch.float32: 1e-3}
