"""Counterfactual explanations (paper 004 App. C, Fig. 8), drawn from ``counterfactuals.nc`` and
``counterfactual_tracer.nc`` (:mod:`causalxai.counterfactual.counterfactuals`).

One row per sample: the original (true label and prediction), the chosen counterfactual
(target, prediction, valid or not; with the refinement on, the generator's raw output before it,
and with the Wachter baseline given, its counterfactual after it), their pixel difference, then TRACER's output-node
attribution of the original and of the counterfactual (blue +, red −, each signed with
respect to that input's predicted class) and the difference of the two, with the features
whose contribution differs outlined. :func:`counterfactual_frame` returns the numbers in the
row titles, so what the figure shows can be checked against the datasets.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from causalxai.plots._figure import DPI, require, save_figure as _save  # noqa: E402,F401

__all__ = ["COLUMNS", "counterfactual_frame", "plot_counterfactuals"]

COLUMNS = ("original", "counterfactual", "difference", "contribution (original)", "contribution (counterfactual)",
           "contribution difference")
_CF_VARS = ("original", "counterfactual", "difference", "label", "pred", "target", "pred_counterfactual", "valid",
            "proximity_l1")
_TR_VARS = ("attribution", "difference", "changed")


def _ids(ds: xr.Dataset) -> list:
    return np.asarray(ds["sample"].values).tolist()


def counterfactual_frame(cf_ds: xr.Dataset, tracer_ds: xr.Dataset | None = None, samples=None,
                         max_samples: int = 4) -> pd.DataFrame:
    """The drawn samples (default: the first ``max_samples`` of ``cf_ds``, which lists the
    misclassified first) with ``kind``, ``label``, ``pred``, ``target``,
    ``pred_counterfactual``, ``valid``, ``proximity_l1`` and, with ``tracer_ds``, the number
    of causal nodes of both versions and ``n_changed`` (features whose contribution differs)."""
    require(cf_ds, _CF_VARS, "counterfactuals.nc")
    ids = _ids(cf_ds)
    chosen = ids[: max(0, int(max_samples))] if samples is None else list(samples)
    for s in chosen:
        if s not in ids:
            raise ValueError(f"sample {s!r} is not in counterfactuals.nc; available samples: {ids[:20]}")
    sub = cf_ds.sel(sample=chosen)
    frame = pd.DataFrame({
        "sample": chosen,
        "kind": np.asarray(sub["kind"].values).astype(str) if "kind" in sub.coords else [""] * len(chosen),
        **{k: sub[k].values for k in ("label", "pred", "target", "pred_counterfactual", "valid", "proximity_l1")},
    })
    if tracer_ds is not None:
        require(tracer_ds, (*_TR_VARS, "n_groups"), "counterfactual_tracer.nc")
        missing = [s for s in chosen if s not in _ids(tracer_ds)]
        if missing:
            raise ValueError(
                f"samples {missing} are not in counterfactual_tracer.nc; available: {_ids(tracer_ds)[:20]}"
            )
        tr = tracer_ds.sel(sample=chosen)
        frame["n_groups_original"] = tr["n_groups"].sel(version="original").values
        frame["n_groups_counterfactual"] = tr["n_groups"].sel(version="counterfactual").values
        frame["n_changed"] = tr["changed"].sum(("y", "x")).values.astype(int)
    return frame


def _signed(ax, fig, a: np.ndarray, gid: str):
    vmax = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 0.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(a, cmap="RdBu", vmin=-vmax, vmax=vmax, interpolation="nearest")
    im.set_gid(gid)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    return im


def _extra_columns(cf_ds: xr.Dataset, wachter_ds: xr.Dataset | None) -> list[tuple[str, xr.Dataset, str]]:
    """The optional image columns after the counterfactual: ``(name, dataset, prefix)``."""
    extra = []
    if "raw_counterfactual_inputs" in cf_ds:
        extra.append(("GAN output (unrefined)", cf_ds, "raw_"))
    if wachter_ds is not None:
        require(wachter_ds, ("counterfactual_inputs", "pred_counterfactual", "valid", "proximity_l1"),
                "wachter_counterfactuals.nc")
        extra.append(("Wachter search", wachter_ds, ""))
    return extra


def plot_counterfactuals(cf_ds: xr.Dataset, tracer_ds: xr.Dataset | None, path: str | os.PathLike[str],
                         samples=None, max_samples: int = 4, wachter_ds: xr.Dataset | None = None) -> Figure:
    """App. C Fig. 8 for a few samples (module docstring); without ``tracer_ds`` only the image
    columns. With the refinement on (``raw_counterfactual_inputs`` in ``cf_ds``) the generator's
    unrefined output, and with ``wachter_ds`` (``wachter_counterfactuals.nc``, same samples) the
    Wachter counterfactual, follow the counterfactual. Writes a PNG atomically and returns the
    closed figure."""
    frame = counterfactual_frame(cf_ds, tracer_ds, samples, max_samples)
    if frame.empty:
        raise ValueError("plot_counterfactuals: no sample to draw (max_samples is 0 or counterfactuals.nc is empty)")
    extra = _extra_columns(cf_ds, wachter_ds)
    names = [*COLUMNS[:2], *(e[0] for e in extra), *COLUMNS[2:]]
    ncols = len(names) if tracer_ds is not None else 3 + len(extra)
    nrows = len(frame)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.5 * ncols, 2.6 * nrows), squeeze=False)
    for r, row in enumerate(frame.itertuples(index=False)):
        sel = {"sample": row.sample}
        orig = cf_ds["original"].sel(sel).transpose("y", "x").values
        cf = cf_ds["counterfactual"].sel(sel).transpose("y", "x").values
        ax = axes[r]
        ax[0].imshow(orig, cmap="gray", vmin=-1, vmax=1, interpolation="nearest").set_gid(f"original {row.sample}")
        kind = f" ({row.kind})" if row.kind else ""
        ax[0].set_title(f"sample {row.sample}{kind}\nlabel {row.label}, pred {row.pred}", fontsize=8)
        ax[1].imshow(cf, cmap="gray", vmin=-1, vmax=1, interpolation="nearest").set_gid(f"counterfactual {row.sample}")
        ok = "valid" if row.valid else "not valid"
        ax[1].set_title(f"counterfactual → {row.target}\npred {row.pred_counterfactual} ({ok})", fontsize=8)
        for e, (name, ds, prefix) in enumerate(extra):
            if row.sample not in _ids(ds):
                raise ValueError(f"sample {row.sample!r} is not in the {name} dataset")
            one = ds.sel(sel)
            img = one[f"{prefix}counterfactual_inputs"].isel(channel=0).transpose("y", "x").values
            a = ax[2 + e]
            a.imshow(img, cmap="gray", vmin=-1, vmax=1, interpolation="nearest").set_gid(f"{name} {row.sample}")
            ok = "valid" if bool(one[f"{prefix}valid"]) else "not valid"
            a.set_title(f"{name}\npred {int(one[f'{prefix}pred_counterfactual'])} ({ok}), "
                        f"ℓ1 {float(one[f'{prefix}proximity_l1']):.1f}", fontsize=8)
        ax = [*ax[:2], *ax[2 + len(extra):]]  # the remaining columns as without extras
        diff = cf_ds["difference"].sel(sel).transpose("y", "x").values
        ax[2].imshow(diff, cmap="PuOr", vmin=-2, vmax=2, interpolation="nearest").set_gid(f"difference {row.sample}")
        ax[2].set_title(f"difference\nℓ1 = {row.proximity_l1:.1f} (raw)", fontsize=8)
        if tracer_ds is not None:
            tr = tracer_ds.sel(sel)
            for c, version in ((3, "original"), (4, "counterfactual")):
                a = tr["attribution"].sel(version=version).transpose("y", "x").values
                _signed(ax[c], fig, a, f"attribution {version} {row.sample}")
                ng = int(getattr(row, f"n_groups_{version}"))
                ax[c].set_title(f"TRACER, {version}\n{ng} causal nodes", fontsize=8)
            d = tr["difference"].transpose("y", "x").values
            _signed(ax[5], fig, d, f"attribution difference {row.sample}")
            changed = tr["changed"].transpose("y", "x").values.astype(float)
            if 0 < changed.sum() < changed.size:
                ax[5].contour(changed, levels=[0.5], colors="0.2", linewidths=0.6)
            ax[5].set_title(f"difference (maps scaled to 1)\n{row.n_changed} features differ", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for c, name in enumerate(names[:ncols]):
        axes[-1, c].set_xlabel(name, fontsize=8)
    fig.suptitle("counterfactual explanations (paper 004 App. C): blue +, red − contributions")
    fig.tight_layout()
    return _save(fig, path)
