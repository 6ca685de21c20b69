"""Average causal effects per causal node and feature attributions (paper 004 Def. 5, App. B):
``ace.nc`` from ``interventions.nc`` (:mod:`causalxai.tracer.interventions`) and the layer groups
of ``causal_nodes.nc`` (:mod:`causalxai.tracer.nodes`).

For sample ``x``, causal node (layer group) ``g`` and intervention ``x'``:

* **Output of a group.** A group's output is the output of its LAST layer (the composite
  ``g_ij = f_j ∘ … ∘ f_i`` of Theorem 1 ends there).
* **Effect.** ``effect = sign · KL`` at that layer, with KL and sign as in
  :mod:`causalxai.tracer.interventions`: the integrand ``|Δ| · KL`` of Definition 5, signed by the
  change at the original's peak unit (``+1``: the patch supported the node's leading unit;
  for the output node, the predicted class).
* **ACE** (Definition 5). ``ACE_g = E_{P(X)}[effect]``: the expectation runs over the
  sample's interventions, i.e. ``P(X)`` is the uniform distribution over the ``n`` intervened
  copies of ``x``, so ``ACE_g`` is the mean effect over the ``n`` interventions.
* **Feature attributions** (App. B, "feature contributions"). Each pixel's attribution is the
  mean effect of the patches that cover it:
  ``attribution(p) = Σ_{patches P ∋ p} effect(P) / c(p)`` with ``c(p) = #{P ∋ p}`` the pixel's
  coverage count, signed (positive: supports, negative: opposes). This is Captum's
  ``Occlusion`` aggregation (the sum of the covering windows' effects divided by the number of
  windows covering the pixel): non-overlapping patches give ``effect`` on each of a patch's
  pixels; with stride 1 a corner pixel is covered by one patch and an inner pixel by ``k²``, and
  all of them get the mean of their patches, so border pixels are not under-weighted (dividing
  by ``k²`` would shrink a corner's effect up to 9× for 3×3 patches). A pixel no patch covers
  (only when the stride exceeds the patch size) gets 0. One matrix product of the effects with
  the boolean patch masks, divided by the coverage count.
* **Explanation mask.** Features whose interventions have a non-negligible effect on the
  decision: :func:`threshold_mask` of the OUTPUT node's attribution (the last group),
  ``|a| ≥ threshold · max |a|``; nothing when every attribution is 0. The same function makes
  the masks of every other explanation method in the reliability comparison (§4.1).
* **Top features** (App. B, Fig. 5 and 10): the ``top_k`` pixels with the largest
  ``|attribution|`` per node (ties: the lower flattened index ``y·W + x`` first), with their
  signed values; ``positive_share`` is the positive part of ``Σ|attribution|``.

Groups are padded to the number of layers ``L`` (a node count can reach ``L``): ``ace``,
``effect``, ``attribution``, ``top_value`` and ``positive_share`` are NaN, ``top_feature``
is −1 and ``output_layer`` is ``''`` for groups ``≥ n_groups(sample)``.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from causalxai.checks import refuse, require_informative
from causalxai.tracer.interventions import patch_masks
from causalxai.tracer.nodes import check_groups
from causalxai.tracer.settings import TracerSettings

__all__ = ["ace_dataset", "threshold_mask", "output_layers"]


def threshold_mask(attribution: Any, threshold: float = 0.1, *, axis: int | Sequence[int] = (-2, -1)) -> Any:
    """The explanation mask of an attribution map: ``|a| ≥ threshold · max |a|``.

    The maximum is taken over ``axis`` (default the last two, ``(y, x)``), separately for
    every leading index; a map whose attributions are all 0 (or NaN) gives an all-False
    mask, NaN entries are never in the mask. The same rule serves every explanation method
    (signed or not: only magnitudes count).

    Args:
        attribution: array-like, tensor or DataArray ``(..., y, x)``.
        threshold: share of the maximum magnitude, in [0, 1].
        axis: the feature axes.

    Returns:
        bool array of the same shape (a DataArray with the same dims and coords for a
        DataArray, a numpy array otherwise).
    """
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold_mask: threshold must lie in [0, 1] (a share of the maximum), got {threshold}")
    if isinstance(attribution, xr.DataArray):
        return attribution.copy(data=threshold_mask(attribution.values, threshold, axis=axis))
    if isinstance(attribution, torch.Tensor):
        attribution = attribution.detach().cpu().numpy()
    mag = np.abs(np.asarray(attribution, dtype=np.float64))
    finite = np.isfinite(mag)
    mag = np.where(finite, mag, 0.0)
    top = mag.max(axis=axis if isinstance(axis, int) else tuple(axis), keepdims=True) if mag.size else mag
    return finite & (top > 0) & (mag >= threshold * top)


def output_layers(groups: Sequence[int] | np.ndarray) -> np.ndarray:
    """Index of each group's output layer (its last layer), ``(G,)``, from group ids ``(L,)``."""
    g = check_groups(groups)
    return np.searchsorted(g, np.arange(int(g[-1]) + 1), side="right") - 1


def _refuse_degenerate(ace: np.ndarray, mask: np.ndarray, layers: Sequence[str], settings: TracerSettings) -> None:
    """The checks of :func:`ace_dataset`'s Raises (``ace`` NaN where a group is padding)."""
    causes = ("no intervention changes the causal nodes (the interventions' kl is 0 or NaN at the nodes' last "
              f"layers {', '.join(layers)}): an untrained or collapsed target model (tracer.model.epochs, "
              "tracer.model.lr), or tracer.layers that miss the layers the input reaches")
    fix = "train the target model longer, or choose other tracer.layers or tracer.interventions settings"
    require_informative(ace, "ace (every sample and causal node)", "ace", causes=causes, fix=fix)
    if mask.size and not mask.any():
        refuse("ace", "mask (TRACER's explanation mask of every sample)",
               f"empty for all {mask.shape[0]} samples (every pixel's attribution at the output node is 0 or NaN: "
               "no occlusion changes the output)", causes=causes, fix=fix)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, str):  # a JSON list, as causalxai.io writes list attributes
        v = json.loads(v)
    arr = np.atleast_1d(np.asarray(v)).astype(np.int64).reshape(-1)
    if arr.size == 1:
        return int(arr[0]), int(arr[0])
    if arr.size == 2:
        return int(arr[0]), int(arr[1])
    raise ValueError(f"patch size / stride attribute must be an int or a (rows, cols) pair, got {v!r}")


def _aligned_groups(interventions: xr.Dataset, groups: xr.DataArray) -> np.ndarray:
    if not isinstance(groups, xr.DataArray) or set(groups.dims) != {"sample", "layer"}:
        raise ValueError(
            "ace_dataset: groups must be a DataArray (sample, layer) of group ids, as causal_nodes.nc's 'group'"
        )
    g = groups
    if "sample" in g.coords:
        missing = sorted(set(interventions["sample"].values.tolist()) - set(g["sample"].values.tolist()))
        if missing:
            raise ValueError(f"ace_dataset: samples {missing[:5]} of interventions.nc have no layer groups")
        g = g.sel(sample=interventions["sample"].values)
    if "layer" in g.coords:
        names = [str(v) for v in interventions["layer"].values]
        have = [str(v) for v in g["layer"].values]
        if sorted(names) != sorted(have):
            raise ValueError(f"ace_dataset: the groups' layers {have} differ from interventions.nc's {names}")
        g = g.sel(layer=names)
    g = g.transpose("sample", "layer")
    if g.shape != (interventions.sizes["sample"], interventions.sizes["layer"]):
        raise ValueError(
            f"ace_dataset: groups of shape {g.shape} for {interventions.sizes['sample']} samples and "
            f"{interventions.sizes['layer']} layers"
        )
    return np.asarray(g.values, dtype=np.int64)


def ace_dataset(interventions: xr.Dataset, groups: xr.DataArray, settings: TracerSettings) -> xr.Dataset:
    """Effects, ACE, attributions, explanation masks and top features per causal node.

    Args:
        interventions: :func:`~causalxai.tracer.interventions.interventions_dataset`'s dataset (needs
            ``kl``, ``sign`` and the attrs ``patch_size``, ``stride``, ``height``, ``width``).
        groups: ``group (sample, layer)`` ids ``0 … G−1`` in layer order (causal_nodes.nc); aligned by
            the ``sample``/``layer`` coordinates when it has them.
        settings: its ``mask_threshold`` (:func:`threshold_mask`'s threshold for the explanation
            mask) and ``top_k`` (how many top features per node, at most ``height·width``).

    Returns:
        Dataset (module docstring) with ``effect (sample, intervention, group)``,
        ``ace (sample, group)``, ``attribution (sample, group, y, x)``, ``mask (sample, y, x)``,
        ``top_feature``/``top_value (sample, group, rank)``, ``positive_share (sample, group)``,
        ``output_layer (sample, group)``, ``n_groups (sample)``, ``layer_group (sample, layer)``
        (the group ids used);
        ``group`` runs over ``0 … L−1``.

    Raises:
        causalxai.checks.DegenerateResultError: ``ace`` (of the real, unpadded groups) is
            all NaN or one constant (in practice all 0: no intervention changes any node), or
            the explanation ``mask`` is empty for every sample (no intervention changes the
            output node, so TRACER explains nothing and the reliability and compression steps
            have nothing to work with). Some empty masks or zero ACEs are normal.
    """
    for var in ("kl", "sign"):
        if var not in interventions:
            raise ValueError(f"ace_dataset: interventions.nc has no {var!r}; make it with interventions_dataset")
    attrs = interventions.attrs
    try:
        kh, kw = _pair(attrs["patch_size"])
        sh, sw = _pair(attrs["stride"])
        height, width = int(attrs["height"]), int(attrs["width"])
    except KeyError as err:
        raise ValueError(
            f"ace_dataset: interventions.nc lacks the attribute {err}; make it with interventions_dataset"
        ) from None
    mask_threshold, top_k = settings.mask_threshold, settings.top_k
    layer_names = [str(v) for v in interventions["layer"].values]
    n_samples, n_layers = interventions.sizes["sample"], len(layer_names)
    g = _aligned_groups(interventions, groups)

    kl = interventions["kl"].transpose("sample", "intervention", "layer").values.astype(np.float64)
    sign = interventions["sign"].transpose("sample", "intervention", "layer").values.astype(np.float64)
    n_int = kl.shape[1]
    masks = patch_masks(height, width, (kh, kw), (sh, sw)).reshape(-1, height * width).numpy()
    if len(masks) != n_int:
        raise ValueError(
            f"ace_dataset: {n_int} interventions but {len(masks)} patches of {kh}×{kw}, stride {sh}×{sw} "
            f"on {height}×{width}; the attributes do not match the data"
        )

    n_groups = np.empty(n_samples, np.int64)
    out_idx = np.zeros((n_samples, n_layers), np.int64)  # padded with 0, masked below
    for s in range(n_samples):
        last = output_layers(g[s])
        n_groups[s] = len(last)
        out_idx[s, : len(last)] = last
    valid = np.arange(n_layers)[None, :] < n_groups[:, None]  # (S, G)

    signed = sign * kl  # (S, n, L)
    effect0 = np.take_along_axis(signed, out_idx[:, None, :], axis=2) * valid[:, None, :]  # (S, n, G), 0-padded
    coverage = masks.sum(axis=0).astype(np.float64)  # (H·W,) patches covering each pixel
    attribution = np.matmul(effect0.transpose(0, 2, 1), masks.astype(np.float64)) / np.maximum(coverage, 1.0)
    ace = effect0.mean(axis=1)

    mag = np.abs(attribution)
    k = min(int(top_k), height * width)
    order = np.argsort(-mag, axis=2, kind="stable")[:, :, :k]
    top_value = np.take_along_axis(attribution, order, axis=2)
    total = mag.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        positive_share = np.where(total > 0, np.clip(attribution, 0, None).sum(axis=2) / total, np.nan)

    final = attribution[np.arange(n_samples), n_groups - 1].reshape(n_samples, height, width)
    mask = threshold_mask(final, mask_threshold)

    pad = ~valid
    effect = np.where(pad[:, None, :], np.nan, effect0)
    ace = np.where(pad, np.nan, ace)
    _refuse_degenerate(ace, mask, layer_names, settings)
    attribution = np.where(pad[:, :, None], np.nan, attribution).reshape(n_samples, n_layers, height, width)
    top_feature = np.where(pad[:, :, None], -1, order).astype(np.int64)
    top_value = np.where(pad[:, :, None], np.nan, top_value)
    positive_share = np.where(pad, np.nan, positive_share)
    names = np.asarray(layer_names, dtype=object)
    output_layer = np.where(pad, "", names[out_idx]).astype(str)

    return xr.Dataset(
        {
            "effect": (("sample", "intervention", "group"), effect),
            "ace": (("sample", "group"), ace),
            "attribution": (("sample", "group", "y", "x"), attribution),
            "mask": (("sample", "y", "x"), mask),
            "top_feature": (("sample", "group", "rank"), top_feature),
            "top_value": (("sample", "group", "rank"), top_value),
            "positive_share": (("sample", "group"), positive_share),
            "output_layer": (("sample", "group"), output_layer),
            "n_groups": (("sample",), n_groups),
            "layer_group": (("sample", "layer"), g),
        },
        coords={
            "sample": interventions["sample"].values,
            "intervention": interventions["intervention"].values,
            "group": np.arange(n_layers),
            "layer": layer_names,
            "y": np.arange(height),
            "x": np.arange(width),
            "rank": np.arange(k),
        },
        attrs={
            "description": "average causal effects per causal node (paper 004 Def. 5: mean over the sample's "
            "interventions of sign·KL at the node's last layer), per-pixel attributions (App. B: mean effect of the "
            "patches covering the pixel, as Captum's Occlusion), explanation mask of the output node and top features",
            "mask_threshold": float(mask_threshold),
            "top_k": int(k),
            "patch_size": attrs["patch_size"],
            "stride": attrs["stride"],
            "height": height,
            "width": width,
        },
    )
