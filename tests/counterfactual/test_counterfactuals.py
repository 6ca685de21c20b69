"""Counterfactual candidates, metrics, choice, sample selection and TRACER on counterfactuals
(paper 004 §3.5, App. C)."""

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from causalxai.counterfactual.counterfactuals import (
    CounterfactualSettings,
    candidate_metrics,
    choose_candidates,
    counterfactual_table,
    counterfactuals,
    methods_table_of,
    minimal_blend,
    select_samples,
    tracer_comparison,
)
from causalxai.counterfactual.gan import GanSettings, train_counterfactual_gan
from causalxai.counterfactual.metrics import METRICS, counterfactual_metrics
from causalxai.tracer.ace import threshold_mask
from causalxai.tracer.pipeline import TracerSettings

SIDE, N_CLASSES = 8, 4


class FixedClassifier(nn.Module):
    """Predicts the class stored in pixel (0, 0): round((x + 1) * 1.5)."""

    def forward(self, x):
        cls = ((x[:, 0, 0, 0] + 1) * 1.5).round().clamp(0, N_CLASSES - 1).long()
        return torch.nn.functional.one_hot(cls, N_CLASSES).float() * 5


class StubGenerator(nn.Module):
    """Writes the target's code into pixel (0, 0) when z[0] > 0, else copies the input; z[1] scales a blob."""

    latent_dim = 2

    def encode(self, x):
        return torch.stack([torch.full((len(x),), 0.5), x.flatten(1).mean(1)], 1)

    def decode(self, z, target):
        out = torch.full((len(z), 1, SIDE, SIDE), -1.0)
        out[:, 0, 2:5, 2:5] = z[:, 1, None, None].clamp(-1, 1)
        code = target.float() / 1.5 - 1
        out[:, 0, 0, 0] = torch.where(z[:, 0] > 0, code, torch.full_like(code, -1.0))
        return out


def tiny_classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, N_CLASSES)).eval()


def toy_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, SIDE, SIDE), generator=g) * 2 - 1


def test_candidate_metrics_by_hand():
    orig = -torch.ones(1, 1, 2, 2)  # raw 0
    # raw [0, .5, 1, 0], [.02, 0, 0, 0]
    cand = torch.tensor([[[[-1.0, 0.0], [1.0, -1.0]]], [[[-0.96, -1.0], [-1.0, -1.0]]]])[None]
    m = candidate_metrics(orig, cand, sparsity_tol=0.05)
    assert m["proximity_l1"][0].tolist() == pytest.approx([1.5, 0.02])
    assert m["proximity_l2"][0].tolist() == pytest.approx([np.sqrt(1.25), 0.02])
    assert m["sparsity"][0].tolist() == pytest.approx([0.5, 0.0])  # 0.02 < tol: unchanged


def test_choice_rule():
    valid = [[False, True, True], [False, False, False], [True, False, True], [False, False, False]]
    prox = [[1.0, 5.0, 3.0], [1.0, 2.0, 3.0], [2.0, 0.5, 2.0], [1.0, 1.0, 1.0]]
    prob = [[0.9, 0.6, 0.7], [0.1, 0.4, 0.3], [0.6, 0.9, 0.6], [0.2, 0.2, 0.2]]
    # closest valid; none valid -> highest target prob; ties -> lower index
    assert choose_candidates(valid, prox, prob).tolist() == [2, 1, 0, 0]


class MeanClassifier(nn.Module):
    """Class 1 when the image mean exceeds 0.25, else class 0."""

    def forward(self, x):
        s = x.flatten(1).mean(1) - 0.25
        return torch.stack([-s, s], 1)


def test_minimal_blend_by_hand():
    orig = -torch.ones(2, 1, 3, 3)  # mean -1: class 0
    cand = torch.stack([torch.ones(2, 1, 3, 3), torch.full((2, 1, 3, 3), 0.2)], 1)  # (N=2, K=2, ...)
    refined, alpha, logits = minimal_blend(MeanClassifier(), orig, cand, torch.tensor([1, 0]), 20)
    # candidate +1: x(a) has mean -1 + 2a > 0.25 from a > 0.625, i.e. a = 0.65 on the grid of 1/20
    assert alpha[0, 0].item() == pytest.approx(0.65)
    assert torch.allclose(refined[0, 0], torch.full((1, 3, 3), -1 + 2 * 0.65))
    # candidate 0.2 never reaches class 1: a = 1, the candidate itself
    assert alpha[0, 1].item() == 1.0 and torch.equal(refined[0, 1], cand[0, 1])
    # target 0 = the original's class: the smallest step is already valid
    assert alpha[1].tolist() == pytest.approx([0.05, 0.05])
    assert torch.allclose(logits, MeanClassifier()(refined.flatten(0, 1)).reshape(2, 2, 2))
    with pytest.raises(ValueError, match="steps"):
        minimal_blend(MeanClassifier(), orig, cand, torch.tensor([1, 0]), 0)


def test_counterfactuals_blend_shrinks_proximity():
    x = toy_images(5)
    x[:, 0, 0, 0] = -1.0
    target = torch.tensor([1, 2, 3, 1, 2])
    kw = dict(n_candidates=4, sigma=0.8, seed=1)
    plain = counterfactuals(StubGenerator(), FixedClassifier(), x, {"target": target}, CounterfactualSettings(**kw))
    blend = counterfactuals(StubGenerator(), FixedClassifier(), x, {"target": target},
                            CounterfactualSettings(blend_steps=10, **kw))
    assert (plain["candidate_alpha"].values == 1).all()
    assert np.allclose(plain["candidate_gan_proximity_l1"].values, plain["candidate_proximity_l1"].values)
    assert np.allclose(blend["candidate_gan_proximity_l1"].values, plain["candidate_proximity_l1"].values)
    # the refined point lies on the segment at alpha: proximity = alpha * the generator's
    a = blend["candidate_alpha"].values
    assert np.allclose(blend["candidate_proximity_l1"].values, a * plain["candidate_proximity_l1"].values, rtol=1e-5)
    # validity never drops, and a valid candidate gets alpha < 1 only where the point is valid
    assert (blend["candidate_valid"].values >= plain["candidate_valid"].values).all()
    assert (blend["candidate_valid"].values | (a == 1)).all()
    assert blend.attrs["mean_proximity_l1"] <= plain.attrs["mean_proximity_l1"] + 1e-9
    # the raw generator output is reported next to the refined one: the plain run's choice and metrics
    assert "raw_valid" not in plain and "raw_counterfactual_inputs" in blend
    np.testing.assert_array_equal(blend["raw_counterfactual_inputs"].values, plain["counterfactual_inputs"].values)
    np.testing.assert_array_equal(blend["raw_chosen"].values, plain["chosen"].values)
    for name in METRICS:
        np.testing.assert_allclose(blend[f"raw_{name}"].values.astype(float), plain[name].values.astype(float))
    table = methods_table_of(blend)
    assert table.index.tolist() == ["gan", "gan_refined"]
    assert table.loc["gan", "proximity_l1"] == pytest.approx(plain.attrs["mean_proximity_l1"])
    assert table.loc["gan_refined", "proximity_l1"] == pytest.approx(blend.attrs["mean_proximity_l1"])
    assert set(counterfactual_table(blend).columns) >= {f"raw_{m}" for m in METRICS}
    assert methods_table_of(plain).index.tolist() == ["gan"]
    with pytest.raises(ValueError, match="blend_steps"):
        counterfactuals(StubGenerator(), FixedClassifier(), x, {"target": target},
                        CounterfactualSettings(blend_steps=-1))


def test_select_samples():
    x = torch.full((10, 1, SIDE, SIDE), -1.0)
    preds = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    x[:, 0, 0, 0] = preds.float() / 1.5 - 1
    y = torch.tensor([0, 1, 2, 0, 0, 2, 2, 3, 0, 1])  # samples 3 and 5 misclassified
    sel = select_samples(FixedClassifier(), x, y, n_correct=3, seed=0)
    assert sel["index"][:2].tolist() == [3, 5] and sel["kind"].tolist() == ["misclassified"] * 2 + ["correct"] * 3
    assert sel["target"][:2].tolist() == [0, 2] and sel["pred"][:2].tolist() == [3, 1]
    assert np.all(sel["pred"][2:] == sel["label"][2:]) and np.all(sel["target"][2:] != sel["label"][2:])
    assert np.all(np.diff(sel["index"][2:]) > 0) and not set(sel["index"][2:]) & {3, 5}
    again = select_samples(FixedClassifier(), x, y, n_correct=3, seed=0)
    assert all(np.array_equal(sel[k], again[k]) for k in sel)
    assert len(select_samples(FixedClassifier(), x, y, n_correct=50, seed=0)["index"]) == 10


def test_select_samples_caps_the_misclassified_with_a_seeded_draw():
    x = torch.full((12, 1, SIDE, SIDE), -1.0)
    preds = torch.tensor([0, 1, 2, 3] * 3)
    x[:, 0, 0, 0] = preds.float() / 1.5 - 1
    y = torch.tensor([1, 1, 0, 3, 0, 2, 2, 0, 0, 1, 3, 3])  # samples 0, 2, 5, 7, 10 misclassified
    wrong = [0, 2, 5, 7, 10]
    every = select_samples(FixedClassifier(), x, y, n_correct=3, seed=4)
    assert every["index"][:5].tolist() == wrong
    for cap, n in ((None, 5), (5, 5), (50, 5)):  # no cap, or one at least their number: all, as before
        sel = select_samples(FixedClassifier(), x, y, n_correct=3, seed=4, n_misclassified=cap)
        assert all(np.array_equal(sel[k], every[k]) for k in sel) and (sel["kind"] == "misclassified").sum() == n
    # the same seeded draw as numpy's, made after the correct samples' (which the cap leaves alone)
    rng = np.random.default_rng(4)
    right = np.flatnonzero(preds.numpy() == y.numpy())
    rng.choice(right, size=3, replace=False)
    rng.integers(1, 4, size=3)
    expect = np.sort(rng.choice(np.array(wrong), size=2, replace=False))
    two = select_samples(FixedClassifier(), x, y, n_correct=3, seed=4, n_misclassified=2)
    assert two["index"][:2].tolist() == expect.tolist() and set(expect) <= set(wrong)
    assert two["kind"].tolist() == ["misclassified"] * 2 + ["correct"] * 3
    assert two["target"][:2].tolist() == y.numpy()[expect].tolist()
    for k in every:  # the correct samples and their drawn targets do not depend on the cap
        assert np.array_equal(two[k][2:], every[k][5:])
    zero = select_samples(FixedClassifier(), x, y, n_correct=3, seed=4, n_misclassified=0)
    assert zero["kind"].tolist() == ["correct"] * 3
    with pytest.raises(ValueError, match="n_misclassified must be >= 0"):
        select_samples(FixedClassifier(), x, y, n_correct=3, seed=4, n_misclassified=-1)


def test_counterfactuals_metrics_and_choice():
    x = toy_images(5)
    x[:, 0, 0, 0] = -1.0  # class 0 for FixedClassifier
    target = torch.tensor([1, 2, 3, 1, 2])
    pool_x = torch.cat([toy_images(12, seed=1), x[:1]])  # the first original is in the pool
    pool_y = torch.tensor([0, 1, 2, 3] * 3 + [1])
    samples = {"target": target, "label": [0] * 5, "index": [10, 11, 12, 13, 14],
               "kind": ["misclassified"] * 2 + ["correct"] * 3}
    ds = counterfactuals(StubGenerator(), FixedClassifier(), x, samples,
                         CounterfactualSettings(n_candidates=6, sigma=0.8, seed=1), pool=(pool_x, pool_y))
    assert ds.sizes == {"sample": 5, "candidate": 6, "channel": 1, "y": SIDE, "x": SIDE, "latent": 2}
    assert ds["delta"].values[:, 0].tolist() == [[0.0, 0.0]] * 5  # candidate 0: no perturbation
    cand = torch.as_tensor(ds["candidates"].values)[:, :, None]
    valid = ds["candidate_valid"].values
    assert np.array_equal(valid, (ds["candidate_pred"].values == target.numpy()[:, None]))
    assert np.array_equal(valid, 0.5 + ds["delta"].values[:, :, 0] > 0)  # the stub's rule
    m = candidate_metrics(x, cand)
    assert np.allclose(ds["candidate_proximity_l1"].values, m["proximity_l1"].numpy())
    chosen = choose_candidates(valid, ds["candidate_proximity_l1"].values, ds["candidate_prob_target"].values)
    assert ds["chosen"].values.tolist() == chosen.tolist()
    assert np.array_equal(ds["counterfactual"].values, ds["candidates"].values[np.arange(5), chosen])
    assert np.allclose(ds["difference"].values, ds["counterfactual"].values - ds["original"].values)
    # plausibility and nn_distance: brute force over target-class pool images, the original itself skipped
    raw = lambda t: (t + 1) / 2  # noqa: E731
    for i in range(5):
        t = int(target[i])
        refs = [j for j in range(13) if int(pool_y[j]) == t and not torch.equal(pool_x[j], x[i])]
        d_orig = min(float((raw(x[i]) - raw(pool_x[j])).abs().sum()) for j in refs)
        assert ds["nn_distance"].values[i] == pytest.approx(d_orig, rel=1e-5)
        for c in range(6):
            d = min(float((raw(cand[i, c]) - raw(pool_x[j])).abs().sum()) for j in refs)
            assert ds["candidate_plausibility_l1"].values[i, c] == pytest.approx(d, rel=1e-5)
    assert ds.attrs["validity_rate"] == pytest.approx(ds["valid"].values.mean())
    assert ds.attrs["n_misclassified"] == 2 and np.isnan(ds["disc_score"].values).all()
    table = counterfactual_table(ds)
    assert list(table.index) == [10, 11, 12, 13, 14] and table["kind"].iloc[0] == "misclassified"
    # CARLA's metrics of the chosen counterfactual: those of causalxai.counterfactual.metrics
    ref = counterfactual_metrics(FixedClassifier(), x, torch.as_tensor(ds["counterfactual_inputs"].values), target,
                                 pool=(pool_x, pool_y), k=5)
    for name in ("l0", "linf", "ynn", "redundancy", "valid", "proximity_l1", "sparsity"):
        np.testing.assert_allclose(ds[name].values.astype(float), ref[name].astype(float), rtol=1e-6)
    assert ds.attrs["seconds_per_counterfactual"] > 0 and ds.attrs["ynn_k"] == 5
    wachter = xr.Dataset({"target": ("sample", target.numpy())}, coords={"sample": [10, 11, 12, 13, 14]})
    with pytest.raises(ValueError, match="samples and targets"):
        methods_table_of(ds, wachter.assign(target=("sample", target.numpy()[::-1].copy())))
    same = counterfactuals(StubGenerator(), FixedClassifier(), x, {"target": target},
                           CounterfactualSettings(n_candidates=6, sigma=0.8, seed=1))
    assert np.array_equal(same["candidates"].values, ds["candidates"].values)
    other = counterfactuals(StubGenerator(), FixedClassifier(), x, {"target": target},
                            CounterfactualSettings(n_candidates=6, sigma=0.8, seed=2))
    assert not np.array_equal(other["delta"].values, ds["delta"].values)
    with pytest.raises(ValueError, match="targets"):
        counterfactuals(StubGenerator(), FixedClassifier(), x, {"target": target[:3]})


def test_tracer_comparison_shapes_and_difference():
    clf = tiny_classifier()
    xo, xc = toy_images(2, seed=3), toy_images(2, seed=4)
    ds = tracer_comparison(clf, xo, xc,
                           TracerSettings(layers=["1", "3"], patch=3, stride=1, eps=0.05, mask_threshold=0.2),
                           sample_ids=[7, 9])
    assert ds["attribution"].dims == ("version", "sample", "y", "x") and ds.sizes["version"] == 2
    assert list(ds["sample"].values) == [7, 9]
    attr = ds["attribution"].values
    norm = attr / np.abs(attr).max(axis=(-2, -1), keepdims=True)
    assert np.allclose(ds["attribution_normalised"].values, norm)
    assert np.allclose(np.abs(ds["attribution_normalised"].values).max(axis=(-2, -1)), 1)
    assert np.allclose(ds["difference"].values, norm[1] - norm[0])
    assert np.array_equal(ds["changed"].values, threshold_mask(ds["difference"].values, 0.2))
    ng = ds["n_groups"].values
    assert ng.shape == (2, 2) and ((ng >= 1) & (ng <= 2)).all()
    for v in range(2):
        for s in range(2):  # the output node is the last group
            assert np.allclose(ds["attribution"].values[v, s], ds["group_attribution"].values[v, s, ng[v, s] - 1])
    assert np.array_equal(ds["image"].values[1], xc[:, 0].numpy())
    with torch.no_grad():
        assert ds["pred"].values[0].tolist() == clf(xo).argmax(1).tolist()


def test_end_to_end_tiny():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(48) % N_CLASSES
    x = torch.rand((48, 1, SIDE, SIDE), generator=g) * 2 - 1
    clf = tiny_classifier()
    gen, disc, hist = train_counterfactual_gan(x[:40], y[:40], clf, GanSettings(epochs=1, batch_size=20, latent_dim=4,
                                               nn_fraction=0.2, seed=0), device="cpu", progress=False)
    sel = select_samples(clf, x[40:], y[40:], n_correct=2, seed=0)
    ds = counterfactuals(gen, clf, x[40:][sel["index"]], {k: sel[k] for k in ("target", "label", "kind")},
                         CounterfactualSettings(n_candidates=3, seed=0), discriminator=disc, pool=(x[:40], y[:40]))
    for name in ("counterfactual", "proximity_l1", "sparsity", "plausibility_l1", "disc_score", "nn_distance"):
        assert np.isfinite(ds[name].values).all(), name
    cmp = tracer_comparison(clf, torch.as_tensor(ds["original_inputs"].values[:2]),
                            torch.as_tensor(ds["counterfactual_inputs"].values[:2]),
                            TracerSettings(layers=["1", "3"], patch=4, stride=4))
    assert np.isfinite(cmp["attribution"].values).all() and cmp["changed"].dtype == bool


def test_counterfactuals_that_change_nothing_are_refused(monkeypatch):
    """Every counterfactual its original (proximity 0), or NaN: refused naming the GAN's settings (issue 17)."""
    from causalxai.checks import DegenerateResultError

    x = toy_images(4)
    x[:, 0, 0, 0] = -1.0
    samples = {"target": torch.tensor([1, 2, 3, 1])}
    ok = counterfactuals(StubGenerator(), FixedClassifier(), x, samples, CounterfactualSettings(n_candidates=2))
    copy = StubGenerator()
    monkeypatch.setattr(copy, "decode", lambda z, target: x.clone()[: len(z)])
    with pytest.raises(DegenerateResultError, match=r"counterfactuals: proximity_l1 .* is constant: all 4 finite "
                                                    r"values equal 0,.*tracer.counterfactual_gan.epochs"):
        counterfactuals(copy, FixedClassifier(), x, samples, CounterfactualSettings(n_candidates=1))
    nan = StubGenerator()
    monkeypatch.setattr(nan, "decode", lambda z, target: torch.full((len(z), 1, SIDE, SIDE), float("nan")))
    with pytest.raises(DegenerateResultError, match=r"proximity_l1 .* is all NaN"):
        counterfactuals(nan, tiny_classifier(), x, samples, CounterfactualSettings(n_candidates=1))
    assert np.isfinite(ok["proximity_l1"].values).all()
