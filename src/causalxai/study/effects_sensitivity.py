"""Which conclusions survive which estimator choices: the sensitivity report of the effects step.

The headline numbers of paper 000 (per bucket, each method's correlation of ITE_Y with
ITE_E and its gap to Identity) depend on choices the paper leaves implicit. The report
recomputes them, with bootstrap intervals, for every combination of

* the normalisation of the maps (``paper``, ``public_code``: :mod:`causalxai.study.postprocess`),
* the RBF bandwidth rule (``fixed``, ``median_bucket``, ``median_cell``: :mod:`causalxai.study.estimators.bandwidth`),
* the estimator (``eq4``, ``mmd_unbiased``: :mod:`causalxai.study.estimators.ite`),

and both aggregations of the correlation (``hparam_mean``, ``pooled``), and reports the
placebo hyperparameter's correlation beside them. The raw attributions are read from the
explanation shards a cell at a time and normalised as they are read
(:class:`causalxai.study.explain.RawMaps`), so memory does not grow with the zoo; for each
normalisation every bandwidth and estimator share one pass over the Gram matrices
(:func:`causalxai.study.effects.compute_effects_grid`). No permutations are run (they do not
enter these numbers), and the bootstrap has its own, smaller number of replicates.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from causalxai.checks import degeneracy, require_informative
from causalxai.progress import Progress
from causalxai.study.effects import EffectsSettings, compute_effects_grid
from causalxai.study.estimators.bandwidth import BANDWIDTHS
from causalxai.study.estimators.estimate import KernelSpec
from causalxai.study.estimators.ite import ESTIMATORS
from causalxai.study.explain import ExplainSettings, RawMaps, normalise_explanations
from causalxai.study.postprocess import NORMALISATIONS

__all__ = ["SensitivityGrid", "check_sensitivity", "sensitivity_table", "headline_rows"]

log = logging.getLogger(__name__)

COLUMNS = ["normalisation", "bandwidth", "estimator", "aggregation", "quantity", "method", "bucket", "stat",
           "value", "lower", "upper"]


@dataclass(frozen=True)
class SensitivityGrid:
    """The choices the report crosses, and its bootstrap replicates."""

    normalisations: Sequence[str] = NORMALISATIONS
    bandwidths: Sequence[str] = BANDWIDTHS
    estimators: Sequence[str] = ESTIMATORS
    bootstrap: int = 20


def headline_rows(effects: xr.Dataset, normalisation: str) -> pd.DataFrame:
    """The report's rows of one ``effects.nc``: for both aggregations, the total effect's
    correlation (``corr``), the gap to Identity (``gap_to_identity``) and the placebo's
    correlation (``placebo_corr``), per method, bucket and statistic, with intervals."""
    a = effects.attrs
    sources = {
        ("hparam_mean", "corr"): (effects["corr_mean"].sel({"effect": "total"}, drop=True),
                                  effects["corr_mean_ci"].sel({"effect": "total"}, drop=True)),
        ("pooled", "corr"): (effects["corr"].sel({"effect": "total"}, drop=True),
                             effects["corr_ci"].sel({"effect": "total"}, drop=True)),
        ("hparam_mean", "gap_to_identity"): (effects["gap_to_identity_mean"], effects["gap_to_identity_mean_ci"]),
        ("pooled", "gap_to_identity"): (effects["gap_to_identity"], effects["gap_to_identity_ci"]),
    }
    if "placebo" in [str(h) for h in effects["hparam"].values]:
        sel = {"effect": "total", "hparam": "placebo"}
        sources[("placebo", "placebo_corr")] = (effects["corr_hparam"].sel(sel, drop=True),
                                                effects["corr_hparam_ci"].sel(sel, drop=True))
    frames = []
    for (aggregation, quantity), (da, ci) in sources.items():
        da = da.transpose("method", "bucket", "stat")
        cv = np.asarray(ci.transpose("method", "bucket", "stat", "bound").values, dtype=float)
        idx = pd.MultiIndex.from_product(
            [[str(m) for m in da["method"].values], [str(b) for b in da["bucket"].values],
             [str(s) for s in da["stat"].values]], names=["method", "bucket", "stat"])
        df = pd.DataFrame({"value": np.asarray(da.values, dtype=float).ravel(), "lower": cv[..., 0].ravel(),
                           "upper": cv[..., 1].ravel()}, index=idx).reset_index()
        df.insert(0, "quantity", quantity)
        df.insert(0, "aggregation", aggregation)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "estimator", a.get("estimator", ""))
    out.insert(0, "bandwidth", a.get("bandwidth", "") if a.get("kernel") == "rbf" else "-")
    out.insert(0, "normalisation", normalisation)
    return out[COLUMNS]


def sensitivity_table(
    zoo: xr.Dataset,
    buckets: xr.Dataset,
    predictions: xr.Dataset,
    attributions: Mapping[str, xr.Dataset | Sequence[str | os.PathLike[str]]],
    explain: ExplainSettings,
    effects: EffectsSettings,
    grid: SensitivityGrid = SensitivityGrid(),
) -> pd.DataFrame:
    """The sensitivity report (see the module docstring) as one tidy table.

    Args:
        zoo, buckets, predictions: as for :func:`causalxai.study.effects.compute_effects`.
        attributions: per method the paths of its ``explain_shard`` outputs (read lazily),
            or a dataset in memory with the raw ``attribution(model, effect, image, y, x)``.
        explain: the explanation settings (clip percentile, zero maps); the normalisation
            is the grid's.
        effects: the effects settings; kernel spec, bootstrap and permutations the grid's.
        grid: the choices to cross.

    Raises:
        causalxai.checks.DegenerateResultError: every correlation of the table is NaN
            (:func:`check_sensitivity`).
    """
    for name, values, allowed in (("normalisations", grid.normalisations, NORMALISATIONS),
                                  ("bandwidths", grid.bandwidths, BANDWIDTHS),
                                  ("estimators", grid.estimators, ESTIMATORS)):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise ValueError(f"sensitivity {name} {list(values)}: choose one or more of {list(allowed)}")
    bandwidths = list(grid.bandwidths) if effects.kernel == "rbf" else [effects.bandwidth]
    specs = [KernelSpec(effects.kernel, bw, est) for bw in bandwidths for est in grid.estimators]
    settings = replace(effects, bootstrap=grid.bootstrap, permutations=0)
    frames = []
    progress = Progress(len(grid.normalisations), f"sensitivity grid of {len(specs)} kernel spec(s)", "normalisations",
                        log, interval=0.0)
    for norm in grid.normalisations:
        st = replace(explain, normalisation=norm)
        maps = {m: normalise_explanations(src, m, st)[["E"]] if isinstance(src, xr.Dataset) else RawMaps(src, m, st)
                for m, src in attributions.items()}
        try:
            for ds in compute_effects_grid(zoo, buckets, predictions, maps, settings, specs):
                frames.append(headline_rows(ds, norm))
        finally:
            for src in maps.values():
                if isinstance(src, RawMaps):
                    src.close()
        del maps
        progress.update()
    table = pd.concat(frames, ignore_index=True)
    check_sensitivity(table, effects)
    return table


def check_sensitivity(table: pd.DataFrame, effects: EffectsSettings | None = None) -> None:
    """Refuse a sensitivity report whose every correlation (``quantity == "corr"``, both
    aggregations, every configuration, method, bucket and statistic) is NaN: the figure
    would be empty. A configuration whose correlations alone are all NaN is a finding of the
    report (that estimator fails on this zoo) and only logged as a warning.

    Raises:
        causalxai.checks.DegenerateResultError: naming the settings that likely caused it.
    """
    corr = table[table["quantity"] == "corr"]
    for key, rows in corr.groupby(["normalisation", "bandwidth", "estimator"], sort=False):
        if degeneracy(rows["value"], constant=False) is not None:
            log.warning("effects_sensitivity: every correlation of normalisation %s, bandwidth %s, estimator %s is "
                        "NaN", *key)
    e = effects
    settings = ("" if e is None else f" (effects.min_models={e.min_models}, effects.max_models_per_group={e.cap}, "
                f"effects.pool={e.pool})")
    require_informative(
        corr["value"], "every correlation of the report (corr, both aggregations, every configuration)",
        "effects_sensitivity",
        causes=f"no bucket has a cell with enough treated and control models{settings}, or the maps carry no "
               "signal (explanations all dropped: explain.zero_maps)",
        fix="lower effects.min_models, raise zoo.n_models or widen buckets.edges (the effects step's message, if it "
            "failed too, names the variable)",
        constant=False,
    )
