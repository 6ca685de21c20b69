"""CARLA's counterfactual metrics (causalxai.counterfactual.metrics) against hand-computed cases,
scikit-learn's NearestNeighbors and CARLA's per-feature loop written out in NumPy."""

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.neighbors import NearestNeighbors
from torch import nn

from causalxai.counterfactual.metrics import (
    METRICS,
    counterfactual_metrics,
    distance_metrics,
    method_summary,
    methods_table,
    redundancy,
    ynn,
)


class SumClassifier(nn.Module):
    """Class 1 iff the raw pixel sum ((x + 1) / 2) exceeds ``thr``, else class 0."""

    def __init__(self, thr):
        super().__init__()
        self.thr = thr

    def forward(self, x):
        s = ((x + 1) / 2).flatten(1).sum(1)
        return torch.stack([self.thr - s, s - self.thr], 1)


def norm(raw):
    return torch.as_tensor(raw, dtype=torch.float32) * 2 - 1


def test_distance_metrics_by_hand():
    original = norm(np.zeros((1, 1, 2, 2)))
    cf = norm(np.array([0.5, 0.04, 0.2, 0.0]).reshape(1, 1, 2, 2))
    m = distance_metrics(original, cf, sparsity_tol=0.05)
    assert float(m["l0"][0]) == 2 and float(m["sparsity"][0]) == 0.5  # 0.04 <= tol does not count
    assert float(m["proximity_l1"][0]) == pytest.approx(0.74, abs=1e-6)
    assert float(m["proximity_l2"][0]) == pytest.approx(np.sqrt(0.25 + 0.0016 + 0.04), abs=1e-6)
    assert float(m["linf"][0]) == pytest.approx(0.5, abs=1e-6)


def test_ynn_by_hand_and_against_sklearn():
    # pool on a line (one pixel): raw 0.0, 0.1, 0.2, 0.9, 1.0 with predicted classes 0, 0, 1, 1, 1
    pool = norm(np.array([0.0, 0.1, 0.2, 0.9, 1.0]).reshape(5, 1, 1, 1))
    pool_pred = torch.tensor([0, 0, 1, 1, 1])
    cf = norm(np.array([0.05, 0.95]).reshape(2, 1, 1, 1))
    # k = 3: the first's neighbours are 0.0, 0.1, 0.2 (classes 0, 0, 1), the second's 0.9, 1.0, 0.2 (1, 1, 1)
    out = ynn(cf, torch.tensor([1, 1]), pool, pool_pred, k=3)
    assert out.tolist() == pytest.approx([1 / 3, 1.0])
    # CARLA's formula, 1 - 1/(n k) * sum |f(x*) - f(x_j)|, for binary labels: the mean of the above
    assert float(out.mean()) == pytest.approx(1 - (2 + 0) / (2 * 3))
    # random images, 4 classes: the neighbours sklearn's NearestNeighbors (Euclidean) finds
    g = torch.Generator().manual_seed(0)
    pool = torch.rand((60, 1, 4, 4), generator=g) * 2 - 1
    pool_pred = torch.randint(0, 4, (60,), generator=g)
    cf = torch.rand((9, 1, 4, 4), generator=g) * 2 - 1
    target = torch.randint(0, 4, (9,), generator=g)
    raw = lambda t: ((t + 1) / 2).flatten(1).numpy().astype(np.float64)  # noqa: E731
    knn = NearestNeighbors(n_neighbors=5).fit(raw(pool)).kneighbors(raw(cf), return_distance=False)
    expected = (pool_pred.numpy()[knn] == target.numpy()[:, None]).mean(1)
    assert ynn(cf, target, pool, pool_pred, k=5, chunk=4).numpy() == pytest.approx(expected)
    with pytest.raises(ValueError, match="k"):
        ynn(cf, target, pool[:3], pool_pred[:3], k=5)


def carla_redundancy(clf, original, cf, target, tol):
    """CARLA's loop: revert each changed feature alone, count the reverts that stay valid."""
    out = []
    for xo, xc, t in zip(original, cf, target):
        if int(clf(xc[None]).argmax(1)) != int(t):
            out.append(np.nan)
            continue
        fo, fc = xo.flatten().numpy(), xc.flatten().numpy()
        red = 0
        for j in range(fc.size):
            if abs((fc[j] + 1) / 2 - (fo[j] + 1) / 2) > tol:
                tmp = fc.copy()
                tmp[j] = fo[j]
                red += int(int(clf(torch.as_tensor(tmp).reshape(xc.shape)[None]).argmax(1)) == int(t))
        out.append(red)
    return np.asarray(out, dtype=np.float64)


def test_redundancy_by_hand_and_against_carlas_loop():
    original = norm(np.zeros((3, 1, 2, 2)))
    cf = norm(np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=np.float64).reshape(3, 1, 2, 2))
    # threshold 1.5: three changed pixels, any one reverted leaves a sum of 2 > 1.5: all three redundant
    r = redundancy(SumClassifier(1.5), original, cf, torch.tensor([1, 1, 1]), batch_size=2)
    assert r[0].item() == 3 and r[1].item() == 3 and np.isnan(r[2].item())  # the third is not valid
    # threshold 2.5: each change of the first two is needed; the third (class 0, its target here) keeps class 0
    # with its one change reverted: that change is redundant
    r = redundancy(SumClassifier(2.5), original, cf, torch.tensor([1, 1, 0]))
    assert r.tolist() == [0, 0, 1]
    # a change within the tolerance is no change: nothing to revert
    r = redundancy(SumClassifier(2.5), original, cf, torch.tensor([1, 1, 0]), sparsity_tol=1.0)
    assert r.tolist() == [0, 0, 0]
    g = torch.Generator().manual_seed(3)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(9, 3))
    x = torch.rand((6, 1, 3, 3), generator=g) * 2 - 1
    xc = (x + (torch.rand((6, 1, 3, 3), generator=g) - 0.5)).clamp(-1, 1)
    t = clf(xc).argmax(1)
    t[0] = (t[0] + 1) % 3  # one invalid
    with torch.no_grad():
        got = redundancy(clf, x, xc, t, sparsity_tol=0.1, batch_size=5).numpy()
        ref = carla_redundancy(clf, x, xc, t, 0.1)
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(got[0]) and np.nanmax(got) > 0


def test_counterfactual_metrics_and_summary():
    clf = SumClassifier(1.5)
    original = norm(np.zeros((2, 1, 2, 2)))
    cf = norm(np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=np.float64).reshape(2, 1, 2, 2))
    pool = (norm(np.array([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1]], dtype=np.float64).reshape(3, 1, 2, 2)),
            np.array([1, 0, 1]))
    m = counterfactual_metrics(clf, original, cf, torch.tensor([1, 1]), pool=pool, k=2)
    assert set(m) == {*METRICS, "pred"}
    assert m["valid"].tolist() == [True, False] and m["pred"].tolist() == [1, 0]
    # nearest class-1 pool image: [1, 1, 0, 1] at l1 1 from the first, 2 from the second
    assert m["plausibility_l1"].tolist() == pytest.approx([1.0, 2.0])
    # pool predictions 1, 0, 1; the first's 2 neighbours: [1,1,0,1] (1) and [1,1,1,1] (1) or [0,0,0,0] (0), l2 1 vs
    # sqrt(2) vs sqrt(2): the tie goes to the lower index, [1,1,1,1] (class 1)
    assert m["ynn"].tolist() == pytest.approx([1.0, 0.5])
    assert m["redundancy"][0] == 0 and np.isnan(m["redundancy"][1])
    assert m["prob_target"][0] == pytest.approx(1 / (1 + np.exp(-1.0)))  # logits -0.5, 0.5
    ds = xr.Dataset({k: ("sample", v) for k, v in m.items()}, coords={"kind": ("sample", ["misclassified", "correct"])})
    ds.attrs["seconds_per_counterfactual"] = 0.25
    row = method_summary(ds)
    assert row["validity"] == 0.5 and row["validity_misclassified"] == 1.0 and row["validity_correct"] == 0.0
    assert row["redundancy"] == 0.0 and row["l0"] == 1.5 and row["seconds_per_counterfactual"] == 0.25
    table = methods_table({"a": (ds, ""), "b": (ds.rename({k: f"raw_{k}" for k in m}), "raw_")})
    assert table.index.tolist() == ["a", "b"] and np.isnan(table.loc["b", "seconds_per_counterfactual"])
    assert table.loc["b", "ynn"] == 0.75
