"""The counterfactual autoencoder-GAN (paper 004 §3.5, App. F): shapes, neighbours, training, checkpoints."""

import numpy as np
import pytest
import torch
from torch import nn

from causalxai.counterfactual.gan import (
    CounterfactualGenerator,
    Discriminator,
    GanSettings,
    history_dataset,
    load_gan,
    nearest_neighbours,
    nn_subset,
    save_gan,
    train_counterfactual_gan,
)


def tiny_classifier(side=8, n_classes=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(side * side, n_classes)).eval()


def toy_data(n=40, side=8, n_classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = torch.rand((n, 1, side, side), generator=g) * 2 - 1
    x[torch.arange(n), 0, y, y] = 1.0
    return x, y


@pytest.mark.parametrize("side", [(28, 28), (8, 8), (5, 7)])
def test_generator_and_discriminator_shapes(side):
    h, w = side
    torch.manual_seed(0)
    gen, disc = CounterfactualGenerator(1, h, w, 10, 6), Discriminator(1, h, w)
    x = torch.rand(3, 1, h, w) * 2 - 1
    target = torch.tensor([0, 4, 9])
    z = gen.encode(x)
    assert z.shape == (3, 6)
    var = z.var(1, unbiased=False)  # standardised; layer_norm's eps keeps it a little below 1
    assert torch.allclose(z.mean(1), torch.zeros(3), atol=1e-5) and bool(((var > 0.5) & (var <= 1 + 1e-5)).all())
    out = gen(x, target)
    assert out.shape == x.shape and bool((out.abs() <= 1).all())
    assert torch.equal(gen(x, target, torch.zeros(3, 6)), out)  # delta = 0 is no perturbation
    assert not torch.equal(gen(x, target, torch.ones(3, 6)), out)
    assert disc(out).shape == (3,)


def test_one_hot_target_changes_the_output():
    torch.manual_seed(0)
    gen = CounterfactualGenerator(1, 8, 8, 4, 5)
    x = torch.rand(2, 1, 8, 8)
    assert not torch.allclose(gen(x, torch.tensor([0, 0])), gen(x, torch.tensor([1, 1])))


def test_nn_subset_per_class_seeded():
    y = np.repeat(np.arange(3), [50, 20, 3])
    s = nn_subset(y, 0.1, 3, seed=5)
    counts = np.bincount(y[s], minlength=3)
    assert counts.tolist() == [5, 2, 1]  # round(10 %), at least one per class
    assert np.array_equal(s, nn_subset(y, 0.1, 3, seed=5)) and np.all(np.diff(s) > 0)
    with pytest.raises(ValueError, match="class 3"):
        nn_subset(y, 0.1, 4, seed=0)
    with pytest.raises(ValueError, match="nn_fraction"):
        nn_subset(y, 0.0, 3, seed=0)


def test_nearest_neighbours_match_brute_force():
    g = torch.Generator().manual_seed(1)
    x = torch.rand((13, 1, 4, 4), generator=g)
    ref = torch.rand((17, 1, 4, 4), generator=g)
    ref_y = torch.randint(0, 3, (17,), generator=g)
    ref_y[:3] = torch.arange(3)
    exclude = torch.full((13,), -1)
    exclude[2] = int(torch.nonzero(ref_y == 1)[0])
    idx, dist = nearest_neighbours(x, ref, ref_y, 4, exclude=exclude, chunk=5)
    for i in range(13):
        for c in range(4):
            cands = [j for j in range(17) if int(ref_y[j]) == c and j != int(exclude[i])]
            if not cands:
                assert idx[i, c] == -1 and torch.isinf(dist[i, c])
                continue
            d = [float((x[i] - ref[j]).abs().sum()) for j in cands]
            assert int(idx[i, c]) == cands[int(np.argmin(d))]
            assert float(dist[i, c]) == pytest.approx(min(d), rel=1e-5)
    mask = torch.zeros(13, 17, dtype=torch.bool)
    mask[:, idx[:, 0]] = True  # every class-0 winner excluded: the next ones win
    idx2, _ = nearest_neighbours(x, ref, ref_y, 4, exclude=mask)
    assert not bool(torch.isin(idx2[:, 0], idx[:, 0]).any())


def test_training_is_seeded_and_logged():
    x, y = toy_data()
    clf = tiny_classifier()
    kw = dict(epochs=2, batch_size=16, latent_dim=4, nn_fraction=0.25, train_fraction=1.0, seed=3)
    g1, d1, h1 = train_counterfactual_gan(x, y, clf, GanSettings(**kw), device="cpu", progress=False)
    g2, d2, h2 = train_counterfactual_gan(x, y, clf, GanSettings(**kw), device="cpu", progress=False)
    t = torch.tensor([1, 2, 3])
    assert torch.equal(g1(x[:3], t), g2(x[:3], t))
    assert torch.equal(d1(x[:3]), d2(x[:3]))
    assert h1["loss_g"] == h2["loss_g"] and len(h1["validity"]) == 2
    assert h1["n_nn_subset"] == 12 and h1["n_train"] == 40
    g3, _, _ = train_counterfactual_gan(x, y, clf, GanSettings(**{**kw, "seed": 4}), device="cpu", progress=False)
    assert not torch.equal(g1(x[:3], t), g3(x[:3], t))
    assert all(np.isfinite(h1[k]).all() for k in ("loss_g", "loss_d", "loss_gan", "loss_l1", "loss_cls"))
    assert all(p.requires_grad for p in clf.parameters())  # the classifier is left as it was
    ds = history_dataset(h1)
    assert ds.sizes["epoch"] == 2 and set(ds.data_vars) >= {"loss_g", "loss_d", "loss_gan", "loss_l1", "validity"}
    assert ds.attrs["lam"] == 0.1 and ds.attrs["lr"] == 1e-3


def test_gan_trains_on_the_seeded_training_subset():
    # §3.5: a 10 % subset; n_train counts it (4 classes x 10 images: one per class), the batches cover only it
    x, y = toy_data()
    clf = tiny_classifier()
    kw = dict(epochs=1, batch_size=2, latent_dim=4, nn_fraction=0.1, train_fraction=0.1, seed=3)
    _, _, h = train_counterfactual_gan(x, y, clf, GanSettings(**kw), device="cpu", progress=False)
    assert h["n_train"] == 4 and h["n_split"] == 40 and h["n_nn_subset"] == 4 and h["train_fraction"] == 0.1
    assert np.bincount(y[nn_subset(y, 0.1, 4, seed=3)].numpy()).tolist() == [1, 1, 1, 1]
    # the training images are only the subset: images outside it do not change the trained generator
    keep = torch.as_tensor(nn_subset(y, 0.1, 4, seed=3))
    x2 = x.clone()
    outside = torch.ones(len(x), dtype=torch.bool)
    outside[keep] = False
    x2[outside] = -x2[outside]
    g1, _, _ = train_counterfactual_gan(x, y, clf, GanSettings(**kw), device="cpu", progress=False)
    g2, _, _ = train_counterfactual_gan(x2, y, clf, GanSettings(**kw), device="cpu", progress=False)
    t = torch.tensor([1, 2, 3])
    assert torch.equal(g1(x[:3], t), g2(x[:3], t))
    with pytest.raises(ValueError, match="train_fraction"):
        nn_subset(y, 0.0, 4, seed=0, what="train_fraction")


def test_l1_term_pulls_towards_the_target_neighbour():
    # λ = 1: only the neighbour term; the output must move towards target-class images
    x, y = toy_data(n=32)
    clf = tiny_classifier()
    kw = dict(batch_size=32, latent_dim=4, nn_fraction=0.5, train_fraction=1.0, seed=0, lam=1.0)
    _, _, h = train_counterfactual_gan(x, y, clf, GanSettings(epochs=8, **kw), device="cpu", progress=False)
    assert h["loss_l1"][-1] < h["loss_l1"][0]


def test_save_load_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    gen, disc = CounterfactualGenerator(1, 8, 8, 4, 3), Discriminator(1, 8, 8)
    path = tmp_path / "gan.pt"
    save_gan(gen, disc, path, {"epochs": 2, "bad": [1]})
    g2, d2, meta = load_gan(path)
    x, t = torch.rand(2, 1, 8, 8), torch.tensor([0, 3])
    assert torch.equal(gen(x, t), g2(x, t)) and torch.equal(disc(x), d2(x))
    assert meta == {"epochs": 2}
    save_gan(gen, None, path)
    assert load_gan(path)[1] is None
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_gan(bad)
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(ValueError, match="bad.pt.*not a counterfactual-GAN"):
        load_gan(bad)
    state = torch.load(path, weights_only=True)
    state["generator_config"]["latent_dim"] = 5
    torch.save(state, bad)
    with pytest.raises(ValueError, match="do not fit"):
        load_gan(bad)


def test_a_diverged_gan_is_refused():
    """lr far too high: NaN weights, every counterfactual NaN; refused naming the lr (issue 17)."""
    from causalxai.checks import DegenerateResultError

    x, y = toy_data()
    kw = dict(epochs=2, batch_size=16, latent_dim=4, nn_fraction=0.25, train_fraction=1.0, seed=3, lr=1e37)
    with pytest.raises(DegenerateResultError, match=r"counterfactual_gan: the GAN's loss_g is not finite at the last "
                                                    r"epoch .*tracer.counterfactual_gan.lr: 1e\+37"):
        train_counterfactual_gan(x, y, tiny_classifier(), GanSettings(**kw), device="cpu", progress=False)
