"""Percentile buckets of test accuracy (paper 000 §3.2, Table 2).

The paper stratifies the zoo into buckets by percentile of test accuracy (default
0-20, 20-40, 40-60, 60-80, 80-90, 90-95, 95-99, 99-100) and estimates treatment effects
within each bucket. A model's percentile is its rank: models are sorted by accuracy
(ties broken by a seeded random permutation, so which of several equally accurate models
lands on which side of an edge depends neither on the order of the zoo's files nor on its
hyperparameters; without a seed, by model index) and model ``r`` of
``N`` lies at percentile ``100 r / N``; it falls in bucket ``b`` when
``edges[b] <= 100 r / N < edges[b+1]``. Ranks rather than accuracy thresholds keep
bucket sizes proportional to their percentile width even where many models share an
accuracy (a zoo has many models stuck at chance). The boundary table reports, per
bucket, the accuracy range of its models and the accuracy percentiles at its edges
(linear interpolation), the numbers of the paper's Table 2.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from causalxai.checks import require_informative

__all__ = ["validate_edges", "bucket_labels", "assign_buckets", "boundary_table", "make_buckets"]


def validate_edges(edges: Sequence[float]) -> np.ndarray:
    """Check bucket edges: strictly increasing percentiles from 0 to 100."""
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"buckets.edges needs at least two percentiles, got {list(edges)}")
    if e[0] != 0 or e[-1] != 100:
        raise ValueError(f"buckets.edges must start at 0 and end at 100, got {list(edges)}")
    if np.any(np.diff(e) <= 0):
        raise ValueError(f"buckets.edges must be strictly increasing, got {list(edges)}")
    return e


def bucket_labels(edges: Sequence[float]) -> list[str]:
    e = validate_edges(edges)
    fmt = lambda v: f"{v:g}"  # noqa: E731
    return [f"{fmt(a)}-{fmt(b)}" for a, b in zip(e[:-1], e[1:])]


def assign_buckets(accuracy: np.ndarray, edges: Sequence[float], seed: int | None = None) -> np.ndarray:
    """Bucket index ``(n_models,)`` of each model by its accuracy's percentile rank.

    Ties in accuracy are broken by a permutation seeded with ``seed`` (by model index if None).
    """
    e = validate_edges(edges)
    acc = np.asarray(accuracy, dtype=float)
    if not np.isfinite(acc).all():
        raise ValueError("accuracies must be finite to bucket them")
    n = acc.size
    tie = np.arange(n) if seed is None else np.random.default_rng([int(seed), 0x71E5]).permutation(n)
    order = np.lexsort((tie, acc))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    pct = 100.0 * rank / n
    return np.clip(np.searchsorted(e, pct, side="right") - 1, 0, e.size - 2)


def boundary_table(accuracy: np.ndarray, bucket: np.ndarray, edges: Sequence[float]) -> pd.DataFrame:
    """Per bucket: percentile range, model count, accuracy range and edge percentiles."""
    e = validate_edges(edges)
    acc = np.asarray(accuracy, dtype=float)
    rows = []
    for b, label in enumerate(bucket_labels(e)):
        sel = acc[bucket == b]
        rows.append(
            {
                "bucket": label,
                "lower_percentile": e[b],
                "upper_percentile": e[b + 1],
                "n_models": int(sel.size),
                "min_accuracy": float(sel.min()) if sel.size else np.nan,
                "max_accuracy": float(sel.max()) if sel.size else np.nan,
                "accuracy_at_lower": float(np.percentile(acc, e[b])),
                "accuracy_at_upper": float(np.percentile(acc, e[b + 1])),
            }
        )
    return pd.DataFrame(rows)


def make_buckets(
    zoo: xr.Dataset, edges: Sequence[float], metric: str = "test_accuracy", seed: int | None = None
) -> xr.Dataset:
    """``buckets.nc``: ``bucket(model)`` and the boundary table on dim ``bucket_label``.

    Args:
        zoo: a ``zoo.nc`` dataset.
        edges: percentile edges, strictly increasing from 0 to 100.
        metric: the zoo variable to bucket by (``test_accuracy`` in the paper).
        seed: seeds the permutation that breaks ties in accuracy (None: model index).

    Raises:
        causalxai.checks.DegenerateResultError: every model has the same accuracy (e.g. a
            zoo stuck at chance): the buckets would split identical models at random, and
            the per-bucket analysis (paper 000 §3.2) would stratify by nothing.
    """
    if metric not in zoo:
        raise ValueError(f"buckets.metric: the zoo has no variable {metric!r}; use one of {sorted(zoo.data_vars)}")
    acc = zoo[metric].values
    if np.isfinite(np.asarray(acc, dtype=float)).all():  # non-finite ones: assign_buckets names them
        require_informative(
            acc, f"{metric} (zoo.nc, the accuracy the models are bucketed by)", "buckets",
            causes="a zoo that did not train, every model at the same accuracy (zoo.train.epochs, "
                   "zoo.train.hparams.learning_rate), or a zoo.nc whose metrics are broken",
            fix="re-train the zoo (snakemake --forcerun zoo) with more epochs or other learning rates",
        )
    bucket = assign_buckets(acc, edges, seed)
    table = boundary_table(acc, bucket, edges)
    labels = table["bucket"].to_list()
    ds = xr.Dataset(
        {
            "bucket": ("model", bucket.astype(np.int64)),
            "accuracy": ("model", acc.astype(np.float64)),
        },
        coords={"model": zoo["model"].values, "bucket_label": labels},
    )
    for col in table.columns.drop("bucket"):
        ds[col] = ("bucket_label", table[col].to_numpy())
    ds["bucket"].attrs["description"] = "index into bucket_label of the model's accuracy-percentile bucket"
    ds.attrs.update({
        "metric": metric, "edges": [float(x) for x in validate_edges(edges)], "dataset": zoo.attrs.get("dataset", ""),
        "tie_break": "model index" if seed is None else f"seeded permutation ({seed})",
    })
    return ds
