"""Within-bucket treatment and control groups: a hand-computed case."""

import numpy as np
import pytest

from causalxai.study.estimators.treatments import LOG_ROUNDED, placebo_levels, treatment_groups, treatment_levels


def test_levels_round_continuous_to_markers():
    lv, labels = treatment_levels("dropout", np.array([0.05, 0.3, 0.69, 0.2]))
    assert labels == ["0", "0.2", "0.45", "0.7"]
    assert lv.tolist() == [0, 1, 3, 1]  # linear distances (0 is a marker): 0.3 is 0.1 from 0.2
    lv, labels = treatment_levels("learning_rate", np.array([1e-3, 2e-2]))
    assert labels == ["0.0005", "0.005", "0.05"] and lv.tolist() == [0, 2]  # log-nearest
    lv, labels = treatment_levels("optimizer", np.array(["sgd", "adam", "sgd"]))
    assert labels == ["adam", "sgd"] and lv.tolist() == [1, 0, 1]
    # train_fraction: linear rounding by default (the public code): 0.17 is 0.07 from 0.1 and
    # 0.08 from 0.25; in log space it is nearer 0.25 (ratio 1.47 against 1.7)
    assert "train_fraction" not in LOG_ROUNDED
    lv, labels = treatment_levels("train_fraction", np.array([0.17, 0.7]))
    assert labels == ["0.1", "0.25", "0.5", "1"] and lv.tolist() == [0, 2]
    lv, _ = treatment_levels("train_fraction", np.array([0.17, 0.7]), log_rounding=["train_fraction"])
    assert lv.tolist() == [1, 2]

def test_groups_by_hand():
    levels = np.array([0, 1, 0, 1, 1, 0])
    buckets = np.array([0, 0, 0, 1, 1, 1])
    groups = treatment_groups(levels, 2, buckets, 2, cap=10, seed=0)
    cells = {(g.value, g.bucket): (g.treated.tolist(), g.control.tolist()) for g in groups}
    assert cells == {
        (0, 0): ([0, 2], [1]),
        (1, 0): ([1], [0, 2]),
        (0, 1): ([5], [3, 4]),
        (1, 1): ([3, 4], [5]),
    }


def test_cap_is_a_seeded_subsample_and_empty_cells_are_skipped():
    levels = np.array([0] * 20 + [1] * 5)
    buckets = np.zeros(25, dtype=int)
    a = treatment_groups(levels, 3, buckets, 1, cap=4, seed=1)
    b = treatment_groups(levels, 3, buckets, 1, cap=4, seed=1)
    assert [g.value for g in a] == [0, 1]  # level 2 has no treated model
    assert len(a[0].treated) == 4 and len(a[0].control) == 4
    assert all(np.array_equal(x.treated, y.treated) and np.array_equal(x.control, y.control) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="max_models_per_group"):
        treatment_groups(levels, 2, buckets, 1, cap=0, seed=0)


def test_placebo_is_seeded_uniform_and_independent():
    a, labels = placebo_levels(3000, 3, seed=4)
    assert labels == ["p0", "p1", "p2"]
    np.testing.assert_array_equal(a, placebo_levels(3000, 3, seed=4)[0])
    np.testing.assert_allclose(np.bincount(a) / 3000, 1 / 3, atol=0.03)
    with pytest.raises(ValueError, match="placebo_levels"):
        placebo_levels(10, 1, seed=0)
