"""The zoo.nc contract: assembly, validation, round trip, rebuilding models."""

import numpy as np
import pandas as pd
import pytest
import torch

from causalxai import io
from causalxai.zoo.dataset import make_zoo_dataset, model_from_zoo, zoo_params
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import batched_logits, zoo_layout


def _zoo(n=5, weights=None):
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.2, size=(n, 4970)).astype(np.float32) if weights is None else weights
    hp = sample_hparams(n, {}, seed=0)
    metrics = pd.DataFrame({"test_accuracy": rng.uniform(size=n), "train_accuracy": rng.uniform(size=n)})
    return make_zoo_dataset(w, hp, metrics, zoo_layout(1), dataset="digits", source="train", input_size=28)


def test_contract_and_roundtrip(tmp_path):
    zoo = _zoo()
    assert zoo["weights"].dims == ("model", "param") and zoo.attrs["n_params"] == 4970
    assert zoo.attrs["in_channels"] == 1 and zoo["optimizer"].dims == ("model",)
    back = io.open(io.write_dataset(zoo, tmp_path / "zoo.nc", step="zoo"))
    np.testing.assert_array_equal(back["weights"].values, zoo["weights"].values)
    assert back["w_init"].values.tolist() == zoo["w_init"].values.tolist()
    x = torch.randn(3, 1, 28, 28)
    is_tanh = torch.tensor(back["activation"].values == "tanh")
    batched = batched_logits(zoo_params(back), x, is_tanh)
    for m in range(back.sizes["model"]):
        torch.testing.assert_close(model_from_zoo(back, m)(x), batched[m], rtol=1e-5, atol=1e-5)


def test_model_from_zoo_takes_the_label_not_the_position():
    zoo = _zoo(n=6)
    sub = zoo.isel(model=[4, 1])  # positions 0, 1 hold the models labelled 4 and 1
    x = torch.randn(2, 1, 28, 28)
    for label in (4, 1):
        torch.testing.assert_close(model_from_zoo(sub, label)(x), model_from_zoo(zoo, label)(x), rtol=0, atol=0)
    with pytest.raises(KeyError, match=r"no model labelled 0 in this zoo \(2 models: 4, 1\)"):
        model_from_zoo(sub, 0)


def test_non_finite_weights_are_refused():
    w = np.zeros((3, 4970), dtype=np.float32)
    w[1, 7] = np.nan
    with pytest.raises(ValueError, match="non-finite weights, e.g. model 1"):
        _zoo(3, w)


def test_row_counts_must_agree():
    with pytest.raises(ValueError, match="weight rows"):
        make_zoo_dataset(
            np.zeros((2, 4970)), sample_hparams(3, {}, 0), pd.DataFrame({"test_accuracy": [0.1, 0.2]}),
            zoo_layout(1), dataset="d", source="train", input_size=28,
        )


def test_a_lazy_zoo_gives_the_same_models_reading_only_their_rows(tmp_path, monkeypatch):
    zoo = _zoo(n=9)
    path = io.write_dataset(zoo, tmp_path / "zoo.nc", step="zoo")
    with io.open_lazy(path) as lazy:
        for sel in (np.array([2, 5, 3]), np.array([8]), slice(1, 4), None, np.array([], dtype=int)):
            want = zoo_params(zoo, sel)
            got = zoo_params(lazy, sel)
            assert want.keys() == got.keys()
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
        ref = model_from_zoo(zoo, 4)
        got = model_from_zoo(lazy, 4)
        for (n1, p1), (n2, p2) in zip(ref.state_dict().items(), got.state_dict().items()):
            assert n1 == n2
            torch.testing.assert_close(p1, p2, rtol=0, atol=0)
        # rows 2..5 only are read for [2, 5, 3]: the bounding range, never the whole array
        seen = []
        real_isel = type(lazy["weights"]).isel

        def spy(self, *args, **kwargs):
            seen.append(kwargs.get("model", args[0] if args else None))
            return real_isel(self, *args, **kwargs)

        monkeypatch.setattr(type(lazy["weights"]), "isel", spy)
        zoo_params(lazy, np.array([2, 5, 3]))
        assert seen == [slice(2, 6)]
