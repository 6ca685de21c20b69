"""TRACER's samples (rule tracer_samples): two class-balanced seeded draws from the test split."""

from __future__ import annotations

import numpy as np
import pytest

from causalxai import io
from causalxai.data.images import class_balanced_indices
from causalxai.tracer.samples import tracer_samples


def test_two_draws_with_their_seeds(tmp_path):
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 20))
    ds = tracer_samples(labels, 25, 12, seed=3)
    np.testing.assert_array_equal(ds["interventions"].values, class_balanced_indices(labels, 25, 3))
    np.testing.assert_array_equal(ds["reliability"].values, class_balanced_indices(labels, 12, 4))  # seed + 1
    np.testing.assert_array_equal(ds["interventions_label"].values, labels[ds["interventions"].values])
    assert ds.attrs["seed_interventions"] == 3 and ds.attrs["seed_reliability"] == 4
    assert sorted(labels[ds["reliability"].values[:10]]) == list(range(10))  # interleaved: balanced prefixes
    io.write_dataset(ds, tmp_path / "samples.nc", step="tracer_samples", seed=3)
    back = io.open(tmp_path / "samples.nc")
    np.testing.assert_array_equal(back["reliability"].values, ds["reliability"].values)


def test_too_many_names_the_key():
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="tracer.reliability.n_samples"):
        tracer_samples(labels, 3, 30, seed=0)
    with pytest.raises(ValueError, match="tracer.n_samples"):
        tracer_samples(labels, 0, 3, seed=0)


def test_all_is_the_whole_test_split_in_order():
    labels = np.random.default_rng(1).integers(0, 10, 57)
    ds = tracer_samples(labels, 5, "all", seed=0)
    np.testing.assert_array_equal(ds["reliability"].values, np.arange(57))
    np.testing.assert_array_equal(ds["reliability_label"].values, labels)
    assert ds.attrs["n_samples_reliability"] == "all" and ds.attrs["n_samples_interventions"] == 5
    np.testing.assert_array_equal(tracer_samples(labels, "all", 3, seed=0)["interventions"].values, np.arange(57))
    with pytest.raises(ValueError, match="tracer.reliability.n_samples"):
        tracer_samples(labels, 5, "most", seed=0)
