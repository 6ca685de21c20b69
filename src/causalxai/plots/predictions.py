"""Figure: distributions of the zoo's predictions per hyperparameter value (paper 000 Fig. 6)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from causalxai.io import atomic_path  # noqa: E402

__all__ = ["plot_prediction_distributions"]


def plot_prediction_distributions(
    predictions: xr.Dataset, zoo: xr.Dataset, images: xr.Dataset, path: str | os.PathLike[str], hparam: str = "optimizer"
) -> None:
    """For one probe image per class, the models' probability of its true class, per value
    of ``hparam`` (other hyperparameters marginalised, as in the paper's Fig. 6)."""
    labels = np.asarray(images["label"].values)
    first = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    prob = np.asarray(predictions["prob"].values)  # (model, image, class)
    values = np.asarray(zoo[hparam].values).astype(str)
    rows = []
    for i in first:
        p_true = prob[:, i, labels[i]]
        rows.append(pd.DataFrame({"image": f"#{i} (class {labels[i]})", hparam: values, "p(true class)": p_true}))
    df = pd.concat(rows, ignore_index=True)
    sns.set_theme(style="whitegrid")
    g = sns.catplot(
        data=df, x=hparam, y="p(true class)", col="image", col_wrap=5, kind="violin", cut=0,
        order=sorted(set(values)), height=2.4, aspect=1.0, inner="quart", density_norm="width",
    )
    g.set_titles("{col_name}")
    g.figure.suptitle(f"{zoo.attrs.get('dataset', '')}: predictions of {prob.shape[0]} models per {hparam}", y=1.02)
    with atomic_path(path) as tmp:
        g.figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(g.figure)
