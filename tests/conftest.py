"""Fixtures shared by the tests of several modules."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from causalxai.zoo.dataset import make_zoo_dataset
from causalxai.zoo.hparams import sample_hparams
from causalxai.zoo.network import zoo_layout


@pytest.fixture(scope="module")
def zoo_and_images():
    rng = np.random.default_rng(0)
    n = 7
    hp = sample_hparams(n, {}, seed=1)
    zoo = make_zoo_dataset(
        rng.normal(scale=0.3, size=(n, 4970)).astype(np.float32), hp,
        pd.DataFrame({"test_accuracy": rng.uniform(size=n)}), zoo_layout(1),
        dataset="toy", source="train", input_size=28,
    )
    images = xr.Dataset(
        {"pixels": (("image", "y", "x"), rng.uniform(-1, 1, size=(4, 28, 28)).astype(np.float32)),
         "label": ("image", np.arange(4))},
        coords={"image": np.arange(4)},
    )
    return zoo, images
