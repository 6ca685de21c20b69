"""Causal validation of the causal nodes and their top units (paper 004 App. B, Fig. 5; the ablation is
not in the paper).

TRACER calls a group of layers a causal node and gives it an average causal effect (Def. 5), but
never intervenes on the node itself. This module does, for every analysed sample ``x`` and causal
node ``g`` (a group, its output the output of its last layer ``l_g``, as in
:mod:`causalxai.tracer.ace`):

* **Node ablation.** Replace the output of ``l_g`` on ``x`` by a mean, run the rest of the network,
  and measure the change of the prediction: ``ablation_kl = KL(softmax(f_ablated(x)) ‖
  softmax(f(x)))`` (the direction of Definition 5, float64 log-softmax), ``ablation_flip`` (the
  predicted class changes) and ``ablation_prob_drop = p(x)_ŷ − p_ablated(x)_ŷ`` at the original
  prediction ``ŷ``. Two means (coordinate ``ablation``):

  - ``interventions``: the mean over the sample's ``n`` interventions, ``ā_g = mean_{x'}
    g_{l_g}(x')`` (the node set to its expected value under ``P(X)``, the distribution ACE averages
    over). Each intervention occludes only k² pixels, so this mean stays close to ``g_{l_g}(x)``
    and the effects are small; what matters is their ranking across nodes.
  - ``samples``: the mean over the analysed samples' original inputs (the usual "mean ablation":
    the node's sample-specific information removed).

  All nodes of a sample, for both means, are ablated in ONE forward pass: ``2G`` copies of ``x``,
  a forward hook on each node's last layer writes the replacement into its rows only.
* **Agreement with ACE** (:func:`ace_ablation_agreement`). If the CKA groups behave as units
  under intervention, nodes with a larger ``|ACE|`` should hurt the prediction more when ablated:
  the Spearman rank correlation of ``|ACE|`` and ``ablation_kl`` across the nodes of each sample
  (NaN with fewer than 3 nodes or a constant side) and pooled over all (sample, node) pairs, per
  ablation.
* **Top units** (App. B, Fig. 5: "the top contributing features (top convolution filter output or
  top-3 feature outputs for linear layers)"). Per node, the units of its last layer (channels of
  a convolutional output, features of a linear one: axis 1) whose activation changes most under
  the interventions, ``score_u = mean_{x'} mean_{positions} |g_{l_g}(x')_u − g_{l_g}(x)_u|``; the
  ``top_units`` largest (ties: the lower index first), each with its contribution map over the
  input: the per-pixel mean over the covering patches of that unit's ``|Δ|`` (the aggregation of
  :mod:`causalxai.tracer.ace`). We keep ``top_units`` (default 3) for every node, convolutional or
  linear, where Fig. 5 draws one filter for convolutional nodes; the first rank is that filter.

The interventions are rebuilt exactly as :func:`~causalxai.tracer.interventions.analyse_one` builds
them (same patches, stride and raw baseline, from interventions.nc's attributes), from
interventions.nc's ``inputs``; only the nodes' last layers are recorded.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr
from scipy.stats import rankdata
from torch import nn

from causalxai.progress import Progress
from causalxai.runtime import eval_mode, model_device
from causalxai.tracer.ace import _aligned_groups, output_layers
from causalxai.tracer.interventions import intervene, patch_masks, record_activations
from causalxai.tracer.model import forward_hooks
from causalxai.tracer.settings import TracerSettings

__all__ = ["spearman", "ablate_nodes", "unit_changes", "node_validation_dataset", "ace_ablation_agreement"]


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation of the finite pairs of ``a`` and ``b`` (average ranks for ties).

    NaN with fewer than 3 finite pairs or when either side is constant.
    """
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = rankdata(x) - (x.size + 1) / 2, rankdata(y) - (y.size + 1) / 2
    return float(np.dot(rx, ry) / np.sqrt(np.dot(rx, rx) * np.dot(ry, ry)))


def ablate_nodes(
    model: nn.Module, x: torch.Tensor, replacements: Sequence[tuple[str, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits on ``x`` with one layer output replaced per row, all rows in one forward.

    Args:
        model: the classifier (logits); run in eval mode under ``no_grad``, flag restored.
        x: ONE input ``(C, H, W)`` (or any shape the model takes without the batch axis).
        replacements: ``(layer name, value)`` per ablation ``g``: row ``g`` of the batch has that
            layer's output replaced by ``value`` (the layer's output shape without the batch axis).

    Returns:
        ``(original (n_classes,), ablated (G, n_classes))`` float32 logits on the CPU.
    """
    device = model_device(model, None)
    x = x.to(device)
    rows: dict[str, list[int]] = {}
    values: dict[str, list[torch.Tensor]] = {}
    for g, (name, value) in enumerate(replacements):  # a layer may be replaced in several rows, by different values
        rows.setdefault(name, []).append(g)
        values.setdefault(name, []).append(value.to(device))
    stacked = {name: torch.stack(v) for name, v in values.items()}

    def replace(name: str, module: nn.Module, out: Any) -> torch.Tensor:
        out = out.clone()
        out[rows[name]] = stacked[name].to(out.dtype)
        return out

    batch = x.unsqueeze(0).expand(len(replacements) + 1, *x.shape).clone()  # row 0: the original
    with eval_mode(model), torch.no_grad():
        original = model(batch[:1]).reshape(1, -1)
        with forward_hooks(model, list(rows), replace):
            ablated = model(batch[1:]).reshape(len(replacements), -1)
    return original[0].float().cpu(), ablated.float().cpu()


def unit_changes(acts: torch.Tensor) -> torch.Tensor:
    """``|Δ|`` per intervention and unit: ``(n, U)`` float64 from a layer's ``(n + 1, U, ...)`` outputs
    (row 0 the original): ``mean over positions |acts[i] − acts[0]|`` for each unit (axis 1)."""
    a = acts.reshape(acts.shape[0], acts.shape[1], -1) if acts.dim() > 1 else acts[:, None]
    return (a[1:].to(torch.float64) - a[0].to(torch.float64)).abs().mean(dim=2)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, str):
        v = json.loads(v)
    arr = np.atleast_1d(np.asarray(v)).astype(np.int64).reshape(-1)
    return (int(arr[0]), int(arr[0])) if arr.size == 1 else (int(arr[0]), int(arr[1]))


def node_validation_dataset(
    model: nn.Module,
    interventions: xr.Dataset,
    groups: xr.DataArray,
    settings: TracerSettings,
    *,
    progress: bool = False,
) -> xr.Dataset:
    """Node ablation and top units of every analysed sample (module docstring).

    Args:
        model: the target classifier (logits), on the device to use.
        interventions: interventions.nc (``inputs (sample, channel, y, x)``, ``layer``, attrs
            ``patch_size``, ``stride``, ``baseline``, ``height``, ``width``).
        groups: ``group (sample, layer)`` of causal_nodes.nc (aligned by coordinates).
        settings: its ``batch_size`` (inputs per forward), ``top_units`` (units kept per node),
            ``from_raw`` (raw → normalised, where the baseline is set, as in the interventions step).
        progress: log the samples done.

    Returns:
        Dataset over ``sample``, ``group`` (``0 … L−1``, padded as ace.nc), ``ablation``
        (``interventions``, ``samples``: which mean replaces the node), ``unit_rank``, ``y``, ``x`` with
        ``ablation_kl``, ``ablation_prob_drop`` (float64), ``ablation_flip`` (bool), ``ablation_pred``
        (int64, −1 padded) ``(sample, group, ablation)``, ``top_unit`` (int64, −1 padded),
        ``top_unit_score (sample, group, unit_rank)`` and ``unit_attribution (sample, group,
        unit_rank, y, x)``; NaN for padded groups/ranks.
    """
    attrs = interventions.attrs
    kh, kw = _pair(attrs["patch_size"])
    sh, sw = _pair(attrs["stride"])
    height, width = int(attrs["height"]), int(attrs["width"])
    baseline = float(attrs["baseline"])
    layer_names = [str(v) for v in interventions["layer"].values]
    g_all = _aligned_groups(interventions, groups)
    inputs = torch.as_tensor(interventions["inputs"].transpose("sample", "channel", "y", "x").values)
    n_samples, n_layers, k = len(inputs), len(layer_names), settings.top_units
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    device = model_device(model, None)
    masks = patch_masks(height, width, (kh, kw), (sh, sw))
    if len(masks) != interventions.sizes["intervention"]:
        raise ValueError(f"node_validation_dataset: {interventions.sizes['intervention']} interventions but "
                         f"{len(masks)} patches; interventions.nc was made with other windows")
    flat = masks.reshape(len(masks), -1).to(torch.float64)
    coverage = flat.sum(0).clamp_min(1.0)

    used = sorted({layer_names[i] for s in range(n_samples) for i in output_layers(g_all[s])}, key=layer_names.index)
    population = record_activations(model, inputs.to(dtype), used, settings.batch_size, device=device)
    population = {name: a.mean(0) for name, a in population.items()}  # mean over the analysed samples

    kl = np.full((n_samples, n_layers, 2), np.nan)
    drop = np.full((n_samples, n_layers, 2), np.nan)
    flip = np.zeros((n_samples, n_layers, 2), bool)
    pred = np.full((n_samples, n_layers, 2), -1, np.int64)
    top = np.full((n_samples, n_layers, k), -1, np.int64)
    score = np.full((n_samples, n_layers, k), np.nan)
    unit_map = np.full((n_samples, n_layers, k, height * width), np.nan)
    counter = Progress(n_samples, "TRACER node ablation", "samples", enabled=progress)
    for s in range(n_samples):
        x = inputs[s].to(device=device, dtype=dtype)
        last = output_layers(g_all[s])
        names = [layer_names[i] for i in last]
        b = settings.from_raw(torch.full_like(x, baseline))
        acts = record_activations(model, intervene(x, masks.to(device), b), sorted(set(names), key=names.index),
                                  settings.batch_size, device=device)
        means = [(name, acts[name][1:].mean(0)) for name in names] + [(name, population[name]) for name in names]
        logits0, ablated = ablate_nodes(model, x, means)
        logp0 = torch.log_softmax(logits0.to(torch.float64), 0)
        logpa = torch.log_softmax(ablated.to(torch.float64), 1)
        y0 = int(torch.argmax(logits0))
        g = len(names)
        per_row = (logpa.exp() * (logpa - logp0)).sum(1).clamp_min(0.0).numpy()
        kl[s, :g] = per_row.reshape(2, g).T
        drop[s, :g] = (logp0[y0].exp() - logpa[:, y0].exp()).numpy().reshape(2, g).T
        pred[s, :g] = ablated.argmax(1).numpy().reshape(2, g).T
        flip[s, :g] = pred[s, :g] != y0
        for j, name in enumerate(names):
            d = unit_changes(acts[name])  # (n, U)
            sc = d.mean(0).numpy()
            order = np.argsort(-sc, kind="stable")[:k]
            top[s, j, : order.size] = order
            score[s, j, : order.size] = sc[order]
            unit_map[s, j, : order.size] = ((d[:, order].T @ flat) / coverage).numpy()
        del acts
        counter.update()

    return xr.Dataset(
        {
            "ablation_kl": (("sample", "group", "ablation"), kl),
            "ablation_prob_drop": (("sample", "group", "ablation"), drop),
            "ablation_flip": (("sample", "group", "ablation"), flip),
            "ablation_pred": (("sample", "group", "ablation"), pred),
            "top_unit": (("sample", "group", "unit_rank"), top),
            "top_unit_score": (("sample", "group", "unit_rank"), score),
            "unit_attribution": (("sample", "group", "unit_rank", "y", "x"),
                                 unit_map.reshape(n_samples, n_layers, k, height, width)),
        },
        coords={
            "sample": interventions["sample"].values,
            "group": np.arange(n_layers),
            "ablation": ["interventions", "samples"],
            "unit_rank": np.arange(k),
            "y": np.arange(height),
            "x": np.arange(width),
        },
        attrs={
            "ablation_description": "each causal node's last-layer output replaced by its mean over the sample's "
            "interventions (ablation 'interventions') or over the analysed samples (ablation 'samples'), all nodes "
            "in one forward pass: KL(softmax(ablated) ‖ softmax(original)), the change "
            "of the predicted class and the drop of its probability; top units: the node's last-layer units "
            "(axis 1) with the largest mean |Δ activation| under the interventions, each with its per-pixel mean "
            "|Δ| over the covering patches (paper 004 App. B, Fig. 5)",
            "top_units": int(k),
        },
    )


def ace_ablation_agreement(ace: xr.DataArray, ablation: xr.DataArray) -> xr.Dataset:
    """Spearman of ``|ACE|`` and the ablation effect across nodes: per sample and pooled.

    Args:
        ace: ``ace (sample, group)`` of ace.nc (NaN for padded groups).
        ablation: ``ablation_kl (sample, group[, ablation])`` (or another per-node ablation effect).

    Returns:
        Dataset with ``ace_ablation_spearman (sample, ablation)`` (NaN with fewer than 3 nodes or a
        constant side) and ``ace_ablation_spearman_pooled (ablation)`` (all finite (sample, node)
        pairs).
    """
    if "ablation" not in ablation.dims:
        ablation = ablation.expand_dims(ablation=["ablation"])
    a = np.abs(ace.transpose("sample", "group").values.astype(np.float64))
    b = ablation.transpose("ablation", "sample", "group").values.astype(np.float64)
    per = np.array([[spearman(a[s], m[s]) for s in range(a.shape[0])] for m in b]).T
    return xr.Dataset(
        {
            "ace_ablation_spearman": (("sample", "ablation"), per.reshape(a.shape[0], len(b))),
            "ace_ablation_spearman_pooled": (("ablation",), np.array([spearman(a, m) for m in b])),
        },
        coords={"sample": ace["sample"].values, "ablation": ablation["ablation"].values},
    )
