"""TRACER in one process (paper 004 §3.3-3.4): the pipeline equals its three stages, and the
reliability step's output-node attribution equals the full analysis."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from causalxai.tracer.ace import ace_dataset
from causalxai.tracer.interventions import interventions_dataset
from causalxai.tracer.nodes import causal_nodes_dataset
from causalxai.tracer.pipeline import TracerSettings, output_attribution, run_tracer


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 4 * 4, 5)).eval()


def test_run_tracer_is_the_three_stages():
    model = _model()
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1)) * 2 - 1
    settings = TracerSettings(layers=["0", "1", "3"], patch=2, stride=2, eps=0.2, eps_sweep=[0, 1], top_k=3)
    result = run_tracer(model, x, settings, labels=[1, 2, 3], sample_ids=[5, 6, 7])
    inter = interventions_dataset(model, x, settings, labels=[1, 2, 3], sample_ids=[5, 6, 7])
    nodes = causal_nodes_dataset(inter["cka"], settings)
    xr.testing.assert_identical(result.interventions, inter)
    xr.testing.assert_identical(result.nodes, nodes)
    xr.testing.assert_identical(result.ace, ace_dataset(inter, nodes["group"], settings))
    assert result.nodes.attrs["eps"] == 0.2 and result.ace.attrs["top_k"] == 3
    assert not model.training


def test_output_attribution_matches_the_full_analysis():
    model = _model()
    x = torch.rand(2, 1, 6, 6) * 2 - 1
    got = output_attribution(model, x, TracerSettings(patch=2, stride=1))
    inter = interventions_dataset(model, x, TracerSettings(layers=["1", "3"], patch=2, stride=1))
    groups = xr.DataArray(np.array([[0, 1], [0, 1]]), dims=("sample", "layer"),
                          coords={"sample": inter["sample"].values, "layer": ["1", "3"]})
    full = ace_dataset(inter, groups, TracerSettings())
    np.testing.assert_allclose(got.numpy(), full["attribution"].isel(group=1).values, rtol=1e-6, atol=1e-12)
