"""The Wachter search (causalxai.counterfactual.wachter): one batched optimisation equals the
per-sample one, λ is raised only while invalid, the frozen point is the first valid one, and the
dataset's metrics are those of causalxai.counterfactual.metrics."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from causalxai.counterfactual.metrics import METRICS, counterfactual_metrics
from causalxai.counterfactual.wachter import WachterSettings, wachter_counterfactuals, wachter_search


def linear_classifier(seed=0, d=16, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, classes)).eval()


def images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 4, 4), generator=g) * 2 - 1


def reference_search(clf, x, t, st):
    """The search for one sample written out step by step (float32, as the package)."""
    raw0 = (x[None] + 1) / 2
    r = raw0.clone().requires_grad_(True)
    opt = torch.optim.Adam([r], lr=st.lr)
    lam, steps = st.lam, 0
    for rnd in range(st.rounds):
        if rnd > 0:
            lam *= st.lam_factor
        for _ in range(st.steps):
            logits = clf(r * 2 - 1)
            if int(logits.argmax(1)) == int(t):
                return (r.detach() * 2 - 1)[0], lam, steps, True
            loss = lam * F.cross_entropy(logits, torch.tensor([int(t)])) + (r - raw0).abs().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                r.clamp_(0, 1)
            steps += 1
    return (r.detach() * 2 - 1)[0], lam, steps, int(clf(r * 2 - 1).argmax(1)) == int(t)


def test_batched_search_equals_one_sample_at_a_time():
    clf = linear_classifier()
    x = images(6)
    with torch.no_grad():
        pred = clf(x).argmax(1)
    target = (pred + 1) % 3
    st = WachterSettings(lam=0.05, lam_factor=10.0, rounds=3, steps=40, lr=0.02)
    out = wachter_search(clf, x, target, st)
    for i in range(len(x)):
        cf, lam, steps, valid = reference_search(clf, x[i], target[i], st)
        assert torch.allclose(out["counterfactual"][i], cf, atol=1e-5), i
        assert float(out["lam"][i]) == pytest.approx(lam) and int(out["steps"][i]) == steps
        assert bool(out["valid"][i]) == valid
    assert out["valid"].any() and all(p.requires_grad for p in clf.parameters())


def test_lambda_rises_until_valid_and_the_search_stops_at_the_first_valid_point():
    # one pixel decides: class 1 iff raw pixel 0 > 0.6; the original is at 0.2
    class Threshold(nn.Module):
        def forward(self, x):
            p = (x[:, 0, 0, 0] + 1) / 2
            return torch.stack([0.6 - p, p - 0.6], 1) * 4

    x = torch.full((2, 1, 2, 2), -0.6)  # raw 0.2
    target = torch.tensor([1, 0])  # the second is valid already
    st = WachterSettings(lam=0.01, lam_factor=100.0, rounds=3, steps=200, lr=0.01)
    out = wachter_search(Threshold(), x, target, st)
    assert out["valid"].tolist() == [True, True]
    # lam = 0.01: the gradient of 0.01 * CE (< 0.04 per pixel) cannot beat the l1 pull (1): not valid in round 1
    assert float(out["lam"][0]) > 0.01 and float(out["lam"][1]) == pytest.approx(0.01)
    assert int(out["steps"][1]) == 0 and torch.equal(out["counterfactual"][1], x[1])
    raw = (out["counterfactual"][0] + 1) / 2
    assert 0.6 < float(raw[0, 0, 0]) < 0.6 + 2 * 0.01 + 1e-6  # just past the boundary (one Adam step ~ lr)
    assert torch.allclose(raw.flatten()[1:], torch.full((3,), 0.2), atol=1e-6)  # nothing else changed


def test_wachter_dataset_carries_the_shared_metrics():
    clf = linear_classifier(1)
    x = images(5, seed=2)
    with torch.no_grad():
        pred = clf(x).argmax(1)
    samples = {"target": ((pred + 2) % 3).numpy(), "index": np.arange(10, 15), "label": pred.numpy(),
               "kind": np.array(["misclassified"] * 2 + ["correct"] * 3)}
    pool = (images(30, seed=5), np.arange(30) % 3)
    st = WachterSettings(lam=0.1, rounds=2, steps=50, lr=0.05)
    ds = wachter_counterfactuals(clf, x, samples, st, pool=pool, ynn_k=3, sparsity_tol=0.05)
    assert ds["sample"].values.tolist() == list(range(10, 15)) and ds["kind"].values.tolist()[0] == "misclassified"
    cf = torch.as_tensor(ds["counterfactual_inputs"].values)
    ref = counterfactual_metrics(clf, x, cf, torch.as_tensor(samples["target"]), pool=pool, k=3)
    for name in METRICS:
        np.testing.assert_allclose(ds[name].values.astype(float), ref[name].astype(float), rtol=1e-6)
    assert ds.attrs["validity_rate"] == pytest.approx(ref["valid"].mean())
    assert ds.attrs["seconds_per_counterfactual"] > 0 and ds.attrs["ynn_k"] == 3
    again = wachter_counterfactuals(clf, x, samples, st, pool=pool, ynn_k=3)
    np.testing.assert_array_equal(again["counterfactual_inputs"].values, ds["counterfactual_inputs"].values)
    with pytest.raises(ValueError, match="targets"):
        wachter_counterfactuals(clf, x, {"target": [0, 1]}, st)


def test_settings_errors_name_the_config_key():
    with pytest.raises(ValueError, match="tracer.wachter.lam_factor"):
        WachterSettings.from_params({"lam_factor": 0.5})
    with pytest.raises(ValueError, match="tracer.wachter.rounds"):
        WachterSettings.from_params({"rounds": 0})
    assert WachterSettings.from_params({"lr": 0.5}).lr == 0.5


def test_a_search_that_never_moves_is_refused():
    """lam 0 leaves only the distance term: every counterfactual is its original, proximity 0
    everywhere; refused naming tracer.wachter.lam (issue 17)."""
    from causalxai.checks import DegenerateResultError

    clf = linear_classifier(1)
    x = images(4, seed=2)
    with torch.no_grad():
        target = ((clf(x).argmax(1) + 1) % 3).numpy()
    with pytest.raises(DegenerateResultError, match=r"wachter_counterfactuals: proximity_l1 .* is constant: all 4 "
                                                    r"finite values equal 0,.*tracer.wachter.lam: 0"):
        wachter_counterfactuals(clf, x, {"target": target}, WachterSettings(lam=0.0, rounds=2, steps=5, lr=0.05))
