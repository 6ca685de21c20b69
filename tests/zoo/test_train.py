"""Vectorized zoo training against per-model torch.optim references."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import ZooCNN, flatten, zoo_layout
from causalxai.zoo.train import TrainSettings, init_flat, train_chunk, train_zoo


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] * (255 / 16)
    x = (F.interpolate(x, size=28, mode="bilinear", align_corners=False) / 255 * 2 - 1).numpy()
    return x, d.target.astype(np.int64)


class KerasAdam(torch.optim.Optimizer):
    """Keras' Adam (epsilon added to sqrt(v), bias correction folded into the step size);
    torch.optim.Adam adds epsilon to the bias-corrected sqrt(v) instead, which differs
    for tiny gradients."""

    def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-7):
        super().__init__(params, dict(lr=lr, b1=b1, b2=b2, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                t, b1, b2 = st["t"], group["b1"], group["b2"]
                st["m"] = b1 * st["m"] + (1 - b1) * p.grad
                st["v"] = b2 * st["v"] + (1 - b2) * p.grad**2
                lr_t = group["lr"] * (1 - b2**t) ** 0.5 / (1 - b1**t)
                p -= lr_t * st["m"] / (st["v"].sqrt() + group["eps"])


def _reference(row, hp, x, y, steps):
    """One model, torch.optim, full batch (every batch is the whole training set)."""
    model = ZooCNN.from_flat(row, zoo_layout(1), hp.activation).train()
    lr = float(hp.learning_rate)
    opt = {
        "sgd": lambda p: torch.optim.SGD(p, lr=lr),
        "adam": lambda p: KerasAdam(p, lr=lr),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=lr, alpha=0.9, eps=1e-7),
    }[hp.optimizer](model.parameters())
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), yt)
        loss = loss + float(hp.l2reg) * sum((m.weight**2).sum()
                                            for m in (model.conv1, model.conv2, model.conv3, model.dense))
        loss.backward()
        opt.step()
    params = {k: v.detach()[None] for k, v in model.state_dict().items()}
    return flatten(params, zoo_layout(1))[0]


def test_chunk_update_rules_match_torch_optim(digits):
    x, y = digits
    x, y = x[:16], y[:16]
    spec = {
        "optimizer": ["sgd", "adam", "rmsprop"],
        "dropout": [0.0],
        "train_fraction": [1.0],
        "learning_rate": {"low": 1e-3, "high": 2e-2, "scale": "log"},
        "l2reg": {"low": 1e-4, "high": 1e-2, "scale": "log"},
    }
    hp = sample_hparams(9, spec, seed=3)
    hp["optimizer"] = ["sgd", "adam", "rmsprop"] * 3
    hp["activation"] = ["relu", "tanh", "relu", "tanh", "relu", "tanh", "tanh", "relu", "relu"]
    layout = zoo_layout(1)
    g = torch.Generator().manual_seed(0)
    flat0 = init_flat(hp, layout, g)
    settings = TrainSettings(epochs=4, batch_size=16, device="cpu")
    params, steps = train_chunk(hp, flat0, torch.tensor(x), torch.tensor(y), settings, layout, g)
    assert steps.tolist() == [4] * 9
    got = flatten(params, layout)
    for i, row in enumerate(hp.itertuples()):
        ref = _reference(flat0[i].numpy(), row, x, y, steps=4)
        # Adam and RMSprop divide by |g|: float32 rounding of near-zero gradients moves a
        # few weights by a little, so compare against the size of the whole update
        moved = float((ref - flat0[i]).abs().max())
        assert moved > 0
        err = float((got[i] - ref).abs().max())
        assert err <= 1e-3 * moved, f"model {i} ({row.optimizer}): error {err:.2e} vs update {moved:.2e}"
        assert float((got[i] - ref).abs().median()) <= 1e-6 * max(moved, 1.0)


def test_models_stop_after_their_own_steps(digits):
    x, y = digits
    x, y = x[:64], y[:64]
    hp = sample_hparams(2, {"train_fraction": [1.0], "dropout": [0.0], "optimizer": ["sgd"]}, seed=0)
    hp["train_fraction"] = [0.25, 1.0]  # 16 and 64 samples: 1 and 4 steps of 16 per epoch
    layout = zoo_layout(1)
    g = torch.Generator().manual_seed(0)
    flat0 = init_flat(hp, layout, g)
    settings = TrainSettings(epochs=2, batch_size=16, device="cpu")
    _, steps = train_chunk(hp, flat0, torch.tensor(x), torch.tensor(y), settings, layout, g)
    assert steps.tolist() == [2, 8]


def test_train_zoo_learns_and_is_deterministic(digits):
    x, y = digits
    tr, te = slice(0, 1200), slice(1200, None)
    spec = {"optimizer": ["adam"], "learning_rate": [1e-2], "init_std": [0.1], "dropout": [0.0],
            "train_fraction": [1.0]}
    kw = dict(n_models=6, hparam_spec=spec, settings=TrainSettings(epochs=2, chunk_size=4, device="cpu"))
    w1, hp1, m1, _ = train_zoo(x[tr], y[tr], x[te], y[te], seed=5, **kw)
    w2, hp2, m2, _ = train_zoo(x[tr], y[tr], x[te], y[te], seed=5, **kw)
    w3, *_ = train_zoo(x[tr], y[tr], x[te], y[te], seed=6, **kw)
    np.testing.assert_array_equal(w1, w2)
    pd.testing.assert_frame_equal(m1, m2)
    assert not np.array_equal(w1, w3)
    assert np.isfinite(w1).all()
    assert m1.test_accuracy.min() > 0.5, m1.test_accuracy.tolist()
    # the recorded accuracy is the rebuilt model's accuracy
    model = ZooCNN.from_flat(w1[0], zoo_layout(1), hp1.activation[0])
    acc = (model(torch.tensor(x[te])).argmax(1).numpy() == y[te]).mean()
    assert acc == pytest.approx(m1.test_accuracy[0], abs=1e-9)


def test_sample_hparams_ranges():
    hp = sample_hparams(2000, {}, seed=0)
    assert set(hp.optimizer) == {"sgd", "adam", "rmsprop"}
    assert set(hp.w_init) == {"he_normal", "orthogonal", "glorot_normal", "RandomNormal", "TruncatedNormal"}
    assert hp.learning_rate.between(5e-4, 5e-2).all() and hp.dropout.between(0, 0.7).all()
    # log-uniform: about half the draws below the geometric mean
    assert abs((hp.l2reg < 1e-5).mean() - 0.5) < 0.05
    with pytest.raises(ValueError, match="n_models"):
        sample_hparams(0, {}, seed=0)


def test_chunks_are_homogeneous_and_cover_every_model():
    from causalxai.zoo.train import make_chunks

    hp = sample_hparams(203, {}, seed=4)
    chunks = make_chunks(hp, 16)
    allm = np.sort(np.concatenate(chunks))
    np.testing.assert_array_equal(allm, np.arange(203))
    for c in chunks:
        assert 1 <= len(c) <= 16
        assert hp.optimizer[c].nunique() == 1 and hp.activation[c].nunique() == 1
        assert (np.diff(hp.train_fraction[c].to_numpy()) >= 0).all()


def test_the_zoo_does_not_depend_on_the_chunk_size_or_the_thread_count(digits):
    """The random draws come in blocks of RNG_BLOCK models, each from its own generator, and a chunk
    is whole blocks: 16, 30 or 1,000 models at a time give the same zoo, bit for bit; and every chunk
    trains on one thread (runtime.chunk_map), so 1, 2 or 3 torch threads (chunks at once) do too."""
    from causalxai.zoo.train import RNG_BLOCK, chunk_blocks, make_chunks

    x, y = digits
    # one (optimizer, activation) group of 40 models: three blocks; subsets of 6-30 images keep it fast
    spec = {"optimizer": ["adam"], "activation": ["relu"], "dropout": {"low": 0.1, "high": 0.5, "scale": "linear"},
            "train_fraction": {"low": 0.03, "high": 0.15, "scale": "log"}}
    hp = sample_hparams(40, spec, seed=3)
    blocks = make_chunks(hp, RNG_BLOCK)
    assert [len(c) for c in chunk_blocks(hp, blocks, 5)] == [1, 1, 1]  # never less than a block
    assert [len(c) for c in chunk_blocks(hp, blocks, 16)] == [1, 1, 1]
    assert chunk_blocks(hp, blocks, 30) == [[0, 1], [2]]  # blocks of 14, 13, 13 models
    assert [len(c) for c in chunk_blocks(hp, blocks, 1000)] == [3]
    threads = torch.get_num_threads()
    runs = {}
    try:
        for c, t in ((16, 1), (30, 1), (1000, 1), (16, 2), (16, 3)):
            torch.set_num_threads(t)
            runs[c, t] = train_zoo(x[:200], y[:200], x[200:250], y[200:250], n_models=40, hparam_spec=spec, seed=3,
                                   settings=TrainSettings(epochs=3, batch_size=8, chunk_size=c, device="cpu"))
            assert torch.get_num_threads() == t  # restored
    finally:
        torch.set_num_threads(threads)
    w16, _, m16, _ = runs[16, 1]
    for (c, t), (w, _, m, _) in runs.items():
        np.testing.assert_array_equal(w, w16, err_msg=f"chunk_size {c}, {t} thread(s)")
        pd.testing.assert_frame_equal(m, m16)
