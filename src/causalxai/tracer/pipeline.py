"""TRACER in one process: interventions → causal nodes → ACE for a model and its inputs
(paper 004 §3.3-3.4, Def. 3-5, App. G).

The workflow runs the chain as three rules (``interventions``, ``causal_nodes``, ``ace``),
each calling its own stage with the same :class:`TracerSettings`; :func:`run_tracer` runs
the same three stages in one call, for the counterfactual comparison
(:func:`causalxai.counterfactual.counterfactuals.tracer_comparison`), the reliability step
(:func:`output_attribution`) and anyone with a model at hand::

    from causalxai.tracer.pipeline import TracerSettings, run_tracer
    result = run_tracer(model, images, TracerSettings(layers=["relu1", "fc3"], patch=3, eps=0.05))
    result.ace["attribution"]        # (sample, group, y, x)

The settings reach every stage through that one object (``eps`` only through
:func:`~causalxai.tracer.nodes.causal_nodes_dataset`); the workflow builds it with
:meth:`TracerSettings.from_params` from the rule's ``tracer`` params.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
import xarray as xr
from torch import nn

from causalxai.tracer.ace import ace_dataset
from causalxai.tracer.interventions import interventions_dataset
from causalxai.tracer.model import observed_layers
from causalxai.tracer.nodes import causal_nodes_dataset
from causalxai.tracer.settings import TracerSettings

__all__ = ["TracerResult", "TracerSettings", "output_attribution", "run_tracer"]


@dataclasses.dataclass(frozen=True)
class TracerResult:
    """The three datasets of one TRACER run: what ``interventions.nc``, ``causal_nodes.nc`` and
    ``ace.nc`` hold for the same inputs."""

    interventions: xr.Dataset
    nodes: xr.Dataset
    ace: xr.Dataset


def run_tracer(
    model: nn.Module,
    inputs: Any,
    settings: TracerSettings,
    *,
    labels: Sequence[int] | None = None,
    sample_ids: Sequence[Any] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> TracerResult:
    """TRACER's chain on ``inputs``: interventions, causal nodes at ``settings.eps``, ACE.

    Args:
        model: the classifier (logits); its training flag is restored.
        inputs: normalised images ``(S, C, H, W)``.
        settings: every stage's settings.
        labels: true classes (default −1: unknown).
        sample_ids: the ``sample`` coordinate (default ``0 … S−1``).
        device: where to compute (default: the model's device).
        progress: log the samples done at a steady rate.

    Returns:
        :class:`TracerResult` with the datasets of
        :func:`~causalxai.tracer.interventions.interventions_dataset`,
        :func:`~causalxai.tracer.nodes.causal_nodes_dataset` and
        :func:`~causalxai.tracer.ace.ace_dataset`.
    """
    inter = interventions_dataset(model, inputs, settings, sample_ids=sample_ids, labels=labels, device=device,
                                  progress=progress)
    nodes = causal_nodes_dataset(inter["cka"], settings)
    return TracerResult(inter, nodes, ace_dataset(inter, nodes["group"], settings))


def output_attribution(
    model: nn.Module,
    images: torch.Tensor,
    settings: TracerSettings,
    *,
    output_layer: str | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """TRACER's attribution over the input for the model's output node only: ``(N, H, W)``.

    The explanation TRACER's mask is made from (:func:`~causalxai.tracer.ace.ace_dataset`'s
    ``mask``): the signed effect of each patch intervention on the output (Def. 5 integrand at
    the output layer), each pixel the mean over the patches covering it. :func:`run_tracer` with only the output
    layer observed (one layer: one causal node; ``settings.layers`` is replaced), so the
    reliability step can explain many test samples.

    Args:
        model: the classifier.
        images: normalised images ``(N, C, H, W)``.
        settings: the interventions' settings (patch, stride, baseline, batch size, normalisation).
        output_layer: the observed layer (default: the model's last leaf module).
        device: where to compute.
        progress: log the samples done at a steady rate.

    Returns:
        float32 ``(N, H, W)`` on the CPU.
    """
    layer = output_layer or observed_layers(model, "all")[-1]
    only = dataclasses.replace(settings, layers=(layer,), top_k=1)
    result = run_tracer(model, images, only, device=device, progress=progress)
    return torch.as_tensor(result.ace["attribution"].isel(group=0).values, dtype=torch.float32)
