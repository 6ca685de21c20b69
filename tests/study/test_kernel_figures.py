"""Fig. 7 and Fig. 8 data against NumPy and the reference eq. (4)."""

import numpy as np
import torch

from causalxai.study.estimators.ite import ite
from causalxai.study.estimators.treatments import treatment_levels
from causalxai.study.kernel_figures import KernelExampleSettings, kernel_comparison, kernel_examples


def test_kernel_examples_and_comparison(effect_inputs):
    zoo, buckets, pred, e = effect_inputs(60, 3, 4, seed=1)
    ex = kernel_examples(zoo, buckets, pred, e, KernelExampleSettings(hparam="dropout", value="0", image=1, n=5),
                         label=4)
    b = str(ex["bucket"].values[0])
    t = ex["model_treated"].sel(bucket=b).values
    c = ex["model_control"].sel(bucket=b).values
    t, c = t[t >= 0], c[c >= 0]
    lv, labels = treatment_levels("dropout", zoo["dropout"].values)
    assert (lv[t] == labels.index("0")).all() and (lv[c] != labels.index("0")).all()
    y = pred["prob"].values[:, 1]
    ref = np.array([[2 - 2 * np.exp(-np.sum((y[a] - y[k]) ** 2) / 10) for k in c] for a in t])
    np.testing.assert_allclose(ex["d_y"].sel(bucket=b).values[: t.size, : c.size], ref, rtol=1e-12)
    frame = kernel_comparison(zoo, {"gradient": e}, hparam="optimizer", cap=100)
    assert set(frame["kernel"]) == {"rbf", "linear", "poly", "cosine"}
    lv, labels = treatment_levels("optimizer", zoo["optimizer"].values)
    maps = e["E"].sel(effect="total").values.reshape(60, 3, -1)
    tt, cc = maps[lv == 0].transpose(1, 0, 2), maps[lv != 0].transpose(1, 0, 2)  # every model: cap not reached
    for kern in ("rbf", "cosine"):
        got = frame[(frame.kernel == kern) & (frame.value == labels[0])].sort_values("image")["ite"].values
        np.testing.assert_allclose(got, ite(torch.tensor(tt), torch.tensor(cc), kern).numpy(), rtol=1e-12)
