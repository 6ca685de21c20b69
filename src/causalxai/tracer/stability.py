"""How stable TRACER's global mechanisms are (paper 004 App. E, Fig. 11; a control the paper lacks).

A mechanism (:mod:`causalxai.tracer.mechanisms`) is a partition of the observed layers into
causal nodes, and a causal node is a chain of consecutive layers with ``CKA ≥ 1 − ε``
(:mod:`causalxai.tracer.nodes`, Theorem 2). When many consecutive-layer similarities sit
close to ``1 − ε``, a small change of ε (or of the analysed samples) changes the partition of
many samples, and with it the mechanism count, the dominant mechanism's share and the coverage
of Fig. 11. This module measures that, from the per-sample CKA matrices alone (no model run):

* **ε-neighbourhood** (:func:`eps_grid`, :func:`stability_dataset`). For every ε on a grid
  ``ε₀ + j·step``, ``|j·step| ≤ radius`` (clipped to [0, 1]): the number of distinct mechanisms,
  the dominant (most frequent) mechanism's share, its number of intermediate nodes, the mean
  number of intermediate nodes over the samples and the coverage of the first ``top``
  mechanisms in Fig. 11's order (fewest nodes first, then share descending, then composition:
  :func:`~causalxai.tracer.mechanisms.mechanisms_dataset`).
* **Bootstrap over the analysed samples.** ``B`` resamples of the ``N`` samples with replacement
  (one seeded ``numpy.random.default_rng(seed)`` draw of ``(B, N)`` indices, shared by every ε):
  the mechanism count and the dominant share of each resample, per ε. All resamples of one ε
  are counted at once (one ``bincount`` over ``B·M`` cells).
* **Near-threshold pairs.** Per sample, the consecutive layer pairs whose CKA lies within
  ``margin`` of ``1 − ε₀`` (``|CKA_{i,i+1} − (1 − ε₀)| ≤ margin``): the similarities whose side
  of the threshold decides the partition. The CKA heat map marks them.

The grouping is exactly :func:`~causalxai.tracer.nodes.layer_groups` of
:func:`~causalxai.tracer.nodes.binary_matrix` (``CKA ≥ 1 − ε − atol``, NaN not similar), done
for all ε and samples at once from the superdiagonals.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from causalxai.tracer.mechanisms import mechanisms_dataset
from causalxai.tracer.nodes import ATOL
from causalxai.tracer.settings import MechanismSettings

__all__ = [
    "eps_grid",
    "groups_over_eps",
    "near_threshold_pairs",
    "bootstrap_counts",
    "stability_dataset",
    "stability_table",
]


def eps_grid(eps: float, radius: float, step: float) -> np.ndarray:
    """The ε-neighbourhood ``ε + j·step`` for integer ``j`` with ``|j·step| ≤ radius``, in [0, 1].

    Args:
        eps: the chosen threshold ε₀ (``tracer.cka.eps``), always on the grid.
        radius: how far the grid reaches on either side.
        step: its spacing (> 0).

    Returns:
        float64 ``(E,)`` ascending, rounded to 12 decimals (so 0.05 − 2·0.0025 prints as 0.045).
    """
    if not 0.0 <= eps <= 1.0 or radius < 0 or step <= 0:
        raise ValueError(f"eps_grid: need eps in [0, 1], radius >= 0, step > 0; got {eps}, {radius}, {step}")
    m = int(np.floor(radius / step + 1e-9))
    grid = np.round(eps + step * np.arange(-m, m + 1), 12)
    return np.unique(grid[(grid >= 0.0) & (grid <= 1.0)])


def _superdiagonals(cka: np.ndarray) -> np.ndarray:
    if cka.ndim != 3 or cka.shape[1] != cka.shape[2] or cka.shape[1] < 1:
        raise ValueError(f"the CKA matrices must be (sample, L, L), got shape {cka.shape}")
    return np.diagonal(cka, offset=1, axis1=1, axis2=2).astype(np.float64)  # (S, L−1)


def groups_over_eps(cka: np.ndarray, eps_values: Sequence[float], atol: float = ATOL) -> np.ndarray:
    """Group ids ``(E, S, L)`` of every sample at every ε (Def. 3 / Theorem 2, vectorised).

    A new group starts at layer ``i`` when ``CKA_{i−1,i} < 1 − ε − atol`` (or is NaN), exactly
    as :func:`~causalxai.tracer.nodes.layer_groups` of :func:`~causalxai.tracer.nodes.binary_matrix`.

    Args:
        cka: ``(S, L, L)`` CKA matrices.
        eps_values: the thresholds.
        atol: the rounding tolerance of the binary matrix.
    """
    sup = _superdiagonals(np.asarray(cka))
    eps = np.asarray(eps_values, dtype=np.float64).reshape(-1, 1, 1)
    similar = sup[None] >= 1.0 - eps - atol  # NaN compares False: a break
    breaks = ~similar
    zero = np.zeros(breaks.shape[:2] + (1,), dtype=np.int64)
    return np.concatenate([zero, np.cumsum(breaks, axis=2)], axis=2).astype(np.int64)


def near_threshold_pairs(cka: np.ndarray, eps: float, margin: float) -> np.ndarray:
    """Per sample, how many consecutive layer pairs have ``|CKA_{i,i+1} − (1 − ε)| ≤ margin``: ``(S,)``."""
    sup = _superdiagonals(np.asarray(cka))
    return (np.abs(sup - (1.0 - float(eps))) <= float(margin) + 1e-12).sum(axis=1).astype(np.int64)


def bootstrap_counts(codes: np.ndarray, n_codes: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mechanism count and dominant share of each bootstrap resample.

    Args:
        codes: ``(N,)`` the mechanism of each sample, ``0 … n_codes − 1``.
        n_codes: the number of distinct mechanisms.
        index: ``(B, N)`` resampled sample indices.

    Returns:
        ``(n_mechanisms (B,) int64, dominant_share (B,) float64)``: distinct mechanisms among
        each resample and the largest count over ``N``.
    """
    b, n = index.shape
    cells = codes[index] + n_codes * np.arange(b)[:, None]
    counts = np.bincount(cells.ravel(), minlength=b * n_codes).reshape(b, n_codes)
    return (counts > 0).sum(axis=1).astype(np.int64), counts.max(axis=1) / n


def stability_dataset(cka: xr.DataArray, eps: float, settings: MechanismSettings) -> xr.Dataset:
    """The ε-neighbourhood report, the bootstrap and the near-threshold pairs (module docstring).

    Args:
        cka: ``cka (sample, layer_i, layer_j)`` (causal_nodes.nc or interventions.nc).
        eps: the chosen threshold ε₀ (``tracer.cka.eps``).
        settings: ``eps_radius``, ``eps_step``, ``bootstrap``, ``top``, ``margin``, ``seed``.

    Returns:
        Dataset with coords ``eps_grid``, ``rank`` (``0 … top−1``), ``bootstrap``, ``sample``
        and ``eps_n_mechanisms``, ``eps_dominant_share``, ``eps_dominant_intermediate``,
        ``eps_dominant_composition``, ``eps_mean_intermediate`` ``(eps_grid)``, ``eps_coverage
        (eps_grid, rank)`` (cumulative share of the first ``rank + 1`` mechanisms; 1 once all are
        counted), ``boot_n_mechanisms``/``boot_dominant_share (eps_grid, bootstrap)`` and
        ``near_pairs (sample)``; attrs ``eps``, ``margin``, ``bootstrap_seed``.
    """
    if set(cka.dims) != {"sample", "layer_i", "layer_j"}:
        raise ValueError(f"stability_dataset needs cka(sample, layer_i, layer_j), got dims {cka.dims}")
    cka = cka.transpose("sample", "layer_i", "layer_j")
    values = np.asarray(cka.values, dtype=np.float64)
    layers = [str(v) for v in cka["layer_i"].values]
    n = values.shape[0]
    if n == 0:
        raise ValueError("stability_dataset: no samples")
    grid = eps_grid(float(eps), settings.eps_radius, settings.eps_step)
    groups = groups_over_eps(values, grid)
    top, n_boot = settings.top, settings.bootstrap
    index = np.random.default_rng(settings.seed).integers(0, n, size=(n_boot, n))

    n_mech = np.empty(grid.size, np.int64)
    dom_share = np.empty(grid.size)
    dom_inter = np.empty(grid.size, np.int64)
    dom_comp: list[str] = []
    mean_inter = np.empty(grid.size)
    coverage = np.empty((grid.size, top))
    boot_n = np.empty((grid.size, n_boot), np.int64)
    boot_share = np.empty((grid.size, n_boot))
    for e in range(grid.size):  # one ε at a time: a few dozen grid points
        mech = mechanisms_dataset(groups[e], layers=layers)
        counts = mech["n_samples"].values
        dom = int(np.argmax(counts))  # ties: the first in Fig. 11's order
        n_mech[e] = counts.size
        dom_share[e] = counts[dom] / n
        dom_inter[e] = int(mech["n_intermediate"].values[dom])
        dom_comp.append(str(mech["composition"].values[dom]))
        mean_inter[e] = float(groups[e][:, -1].mean())  # n_nodes − 1 per sample
        cov = mech["coverage"].values
        coverage[e] = cov[np.minimum(np.arange(top), cov.size - 1)]
        boot_n[e], boot_share[e] = bootstrap_counts(mech["sample_mechanism"].values, counts.size, index)

    return xr.Dataset(
        {
            "eps_n_mechanisms": (("eps_grid",), n_mech),
            "eps_dominant_share": (("eps_grid",), dom_share),
            "eps_dominant_intermediate": (("eps_grid",), dom_inter),
            "eps_dominant_composition": (("eps_grid",), np.asarray(dom_comp, dtype=str)),
            "eps_mean_intermediate": (("eps_grid",), mean_inter),
            "eps_coverage": (("eps_grid", "rank"), coverage),
            "boot_n_mechanisms": (("eps_grid", "bootstrap"), boot_n),
            "boot_dominant_share": (("eps_grid", "bootstrap"), boot_share),
            "near_pairs": (("sample",), near_threshold_pairs(values, eps, settings.margin)),
        },
        coords={
            "eps_grid": grid,
            "rank": np.arange(top),
            "bootstrap": np.arange(n_boot),
            "sample": cka["sample"].values,
        },
        attrs={
            "eps": float(eps),
            "margin": float(settings.margin),
            "bootstrap_seed": int(settings.seed),
            "stability_description": "mechanism count, dominant share and coverage of the first mechanisms for ε "
            "on a grid around the chosen one, a seeded bootstrap over the analysed samples, and per sample the "
            "consecutive layer pairs with |CKA − (1 − ε)| ≤ margin",
        },
    )


def stability_table(ds: xr.Dataset) -> pd.DataFrame:
    """The ε-stability table (``tables/mechanisms_stability.csv``): one row per ε of the grid.

    Columns ``eps``, ``chosen`` (ε₀), ``n_mechanisms``, ``dominant_share``,
    ``dominant_n_intermediate``, ``mean_n_intermediate``, ``coverage_top<r>`` for each rank and,
    when there are bootstrap resamples, the 2.5 / 50 / 97.5 % quantiles of the resampled
    mechanism count and dominant share, and ``dominant_composition``.
    """
    grid = np.asarray(ds["eps_grid"].values, dtype=np.float64)
    df = pd.DataFrame({
        "eps": grid,
        "chosen": np.isclose(grid, float(ds.attrs["eps"]), rtol=0.0, atol=1e-9),
        "n_mechanisms": ds["eps_n_mechanisms"].values,
        "dominant_share": ds["eps_dominant_share"].values,
        "dominant_n_intermediate": ds["eps_dominant_intermediate"].values,
        "mean_n_intermediate": ds["eps_mean_intermediate"].values,
    })
    for r in range(ds.sizes["rank"]):
        df[f"coverage_top{r + 1}"] = ds["eps_coverage"].values[:, r]
    if ds.sizes["bootstrap"]:
        for var, name in (("boot_n_mechanisms", "n_mechanisms"), ("boot_dominant_share", "dominant_share")):
            q = np.quantile(ds[var].values.astype(np.float64), [0.025, 0.5, 0.975], axis=1)
            for level, row in zip(("q025", "q50", "q975"), q):
                df[f"boot_{name}_{level}"] = row
    df["dominant_composition"] = [str(v) for v in ds["eps_dominant_composition"].values]
    return df
