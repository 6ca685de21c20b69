"""Accuracy-percentile buckets: a hand-computed case."""

import numpy as np
import pytest
import xarray as xr

from causalxai.study.buckets import assign_buckets, boundary_table, bucket_labels, make_buckets, validate_edges


def test_hand_computed_buckets():
    # ten models; ranks by accuracy (ties by index): model 3 (0.1) r0, 7 (0.1) r1, 0 (0.2) r2, ...
    acc = np.array([0.2, 0.9, 0.5, 0.1, 0.95, 0.6, 0.3, 0.1, 0.8, 0.99])
    edges = [0, 50, 80, 100]
    # percentile 100*r/10: r0-4 -> [0,50), r5-7 -> [50,80), r8-9 -> [80,100]
    # sorted: 3,7,0,6,2 | 5,8,1 | 4,9
    expected = np.array([0, 1, 0, 0, 2, 1, 0, 0, 1, 2])
    np.testing.assert_array_equal(assign_buckets(acc, edges), expected)
    table = boundary_table(acc, expected, edges)
    assert table.bucket.tolist() == ["0-50", "50-80", "80-100"]
    assert table.n_models.tolist() == [5, 3, 2]
    assert table.min_accuracy.tolist() == [0.1, 0.6, 0.95]
    assert table.max_accuracy.tolist() == [0.5, 0.9, 0.99]
    # np.percentile(acc, 50) by linear interpolation of the sorted values 0.5 and 0.6
    assert table.accuracy_at_lower[1] == pytest.approx(0.55)


def test_default_edges_give_paper_bucket_sizes():
    acc = np.random.default_rng(0).uniform(size=1000)
    edges = [0, 20, 40, 60, 80, 90, 95, 99, 100]
    counts = np.bincount(assign_buckets(acc, edges), minlength=8)
    assert counts.tolist() == [200, 200, 200, 200, 100, 50, 40, 10]
    assert bucket_labels(edges)[-1] == "99-100"


def test_ties_are_split_deterministically():
    acc = np.full(10, 0.1)
    b = assign_buckets(acc, [0, 50, 100])
    np.testing.assert_array_equal(b, [0] * 5 + [1] * 5)


@pytest.mark.parametrize(
    "edges, message",
    [
        ([0, 50, 50, 100], "strictly increasing"),
        ([10, 100], "start at 0"),
        ([0, 90], "end at 100"),
        ([0], "at least two"),
    ],
)
def test_bad_edges(edges, message):
    with pytest.raises(ValueError, match=message):
        validate_edges(edges)


def test_make_buckets_dataset():
    zoo = xr.Dataset({"test_accuracy": ("model", np.linspace(0, 1, 20))}, coords={"model": np.arange(20)})
    ds = make_buckets(zoo, [0, 50, 100])
    assert ds["bucket"].values.tolist() == [0] * 10 + [1] * 10
    assert ds["n_models"].values.tolist() == [10, 10]
    with pytest.raises(ValueError, match="buckets.metric"):
        make_buckets(zoo, [0, 100], metric="nope")


def test_seeded_ties_do_not_follow_the_model_index():
    acc = np.full(40, 0.1)
    a = assign_buckets(acc, [0, 50, 100], seed=3)
    assert np.bincount(a).tolist() == [20, 20]
    np.testing.assert_array_equal(a, assign_buckets(acc, [0, 50, 100], seed=3))  # seeded
    assert not np.array_equal(a, assign_buckets(acc, [0, 50, 100]))  # not by index
    assert not np.array_equal(a, assign_buckets(acc, [0, 50, 100], seed=4))
    # distinct accuracies: the seed changes nothing
    acc = np.random.default_rng(0).uniform(size=40)
    np.testing.assert_array_equal(assign_buckets(acc, [0, 50, 100], seed=3), assign_buckets(acc, [0, 50, 100]))


def test_a_zoo_at_one_accuracy_is_refused():
    """Every model at chance: the buckets would split identical models at random (issue 17)."""
    from causalxai.checks import DegenerateResultError

    zoo = xr.Dataset({"test_accuracy": ("model", np.full(12, 0.1))}, coords={"model": np.arange(12)})
    with pytest.raises(DegenerateResultError, match=r"buckets: test_accuracy .* is constant: all 12 finite values "
                                                    r"equal 0.1, .*zoo.train.epochs"):
        make_buckets(zoo, [0, 50, 100])
    ties = zoo.assign(test_accuracy=("model", np.r_[np.full(11, 0.1), 0.2]))  # many ties are normal
    assert make_buckets(ties, [0, 50, 100], seed=0)["n_models"].values.tolist() == [6, 6]
