"""Within-bucket treatment and control groups: a hand-computed case."""

import numpy as np
import pytest

from causalxai.effects.groups import treatment_groups, treatment_levels


def test_levels_round_continuous_to_markers():
    lv, labels = treatment_levels("dropout", np.array([0.05, 0.3, 0.69, 0.2]))
    assert labels == ["0", "0.2", "0.45", "0.7"]
    assert lv.tolist() == [0, 1, 3, 1]  # linear distances (0 is a marker): 0.3 is 0.1 from 0.2
    lv, labels = treatment_levels("learning_rate", np.array([1e-3, 2e-2]))
    assert labels == ["0.0005", "0.005", "0.05"] and lv.tolist() == [0, 2]  # log-nearest
    lv, labels = treatment_levels("optimizer", np.array(["sgd", "adam", "sgd"]))
    assert labels == ["adam", "sgd"] and lv.tolist() == [1, 0, 1]


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
