"""Figure: distributions of the zoo's predictions per hyperparameter value (paper 000 Fig. 6).

As the paper draws it (public code ``plotting.py:plot_vanilla_ite_values``): for one probe
image per class (x axis), the distribution of the models' prediction ``Y_h(x)`` (the
predicted class) per value of the hyperparameter (colour, the others marginalised), its mean
as a diamond and the true class as a star; beside it the aggregate over those images. A
second row shows the models' probability of the true class per value, with its mean: the
difference of two values' means is the non-kernelised ITE of eq. (4).
"""

from __future__ import annotations

import os
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from causalxai.plots._figure import save_figure  # noqa: E402

__all__ = ["prediction_frame", "plot_prediction_distributions"]


def prediction_frame(
    predictions: xr.Dataset, zoo: xr.Dataset, images: xr.Dataset, hparam: str = "optimizer"
) -> pd.DataFrame:
    """Rows (image, label, model, value, predicted, p_true) for the first probe image of each class."""
    if hparam not in zoo:
        raise ValueError(f"hyperparameter {hparam!r} is not in zoo.nc")
    labels = np.asarray(images["label"].values)
    first = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    prob = np.asarray(predictions["prob"].values)  # (model, image, class)
    values = np.asarray(zoo[hparam].values).astype(str)
    rows = []
    for i in first:
        rows.append(pd.DataFrame({
            "image": f"x{i} ({labels[i]})", "label": int(labels[i]), "model": np.arange(prob.shape[0]),
            "value": values, "predicted": prob[:, i].argmax(-1), "p_true": prob[:, i, labels[i]],
        }))
    return pd.concat(rows, ignore_index=True)


def plot_prediction_distributions(
    predictions: xr.Dataset,
    zoo: xr.Dataset,
    images: xr.Dataset,
    path: str | os.PathLike[str],
    hparam: str = "optimizer",
) -> Figure:
    """Paper 000 Fig. 6 (see the module docstring)."""
    df = prediction_frame(predictions, zoo, images, hparam)
    order = sorted(df["value"].unique())
    imgs = list(dict.fromkeys(df["image"]))
    palette = dict(zip(order, sns.color_palette("Set2", len(order))))
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(2, 2, figsize=(16, 8), gridspec_kw={"width_ratios": [5, 1]}, sharey="row")
    width = 0.8
    offsets = width * (np.arange(len(order)) - (len(order) - 1) / 2) / len(order)
    for row, (col, ylabel) in enumerate((("predicted", "predicted class Y_h(x)"), ("p_true", "p(true class)"))):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning)
            sns.violinplot(data=df, x="image", y=col, hue="value", hue_order=order, order=imgs, palette=palette,
                           cut=0, density_norm="width", inner=None, linewidth=0.5, ax=axes[row, 0], legend=False)
            agg = df.assign(image="all")
            sns.violinplot(data=agg, x="image", y=col, hue="value", hue_order=order, palette=palette, cut=0,
                           density_norm="width", inner=None, linewidth=0.5, ax=axes[row, 1], legend=False)
        means = df.groupby(["image", "value"])[col].mean()
        for i, im in enumerate(imgs):
            for off, v in zip(offsets, order):
                axes[row, 0].plot(i + off, means.loc[(im, v)], marker="D", color="navy", ms=5)
        for off, v in zip(offsets, order):
            axes[row, 1].plot(off, df[df["value"] == v][col].mean(), marker="D", color="navy", ms=5)
        axes[row, 0].set_ylabel(ylabel)
        axes[row, 0].set_xlabel("")
        axes[row, 1].set_xlabel("")
    for i, im in enumerate(imgs):
        axes[0, 0].plot(i, df[df["image"] == im]["label"].iloc[0], marker="*", color="black", ms=13)
    axes[0, 0].set_yticks(range(10))
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=palette[v], edgecolor="0.3", label=v) for v in order]
    handles += [Line2D([], [], color="navy", marker="D", ls="", label="mean"),
                Line2D([], [], color="black", marker="*", ls="", ms=11, label="true class")]
    axes[0, 1].legend(handles=handles, title=hparam, loc="upper left", bbox_to_anchor=(1.05, 1.0), frameon=False)
    fig.suptitle(f"{zoo.attrs.get('dataset', '')}: predictions of {predictions.sizes['model']} models per {hparam}, "
                 "one probe image per class (left) and all of them (right)")
    fig.tight_layout()
    return save_figure(fig, path)
