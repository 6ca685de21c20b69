"""Global mechanisms and coverage (paper 004 App. E, Fig. 11) on a hand-built group table."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from causalxai.tracer.mechanisms import (
    composition_string,
    coverage_levels,
    mechanisms_dataset,
    parse_composition,
)

LAYERS = ["conv1", "relu1", "fc1", "fc3"]
# three distinct partitions over 4 layers:
#   A = conv1+relu1|fc1+fc3       (2 nodes)  samples 0, 2, 5   -> 3/6
#   B = conv1+relu1+fc1|fc3       (2 nodes)  sample 4          -> 1/6
#   C = conv1|relu1|fc1+fc3       (3 nodes)  samples 1, 3      -> 2/6
TABLE = np.array(
    [
        [0, 0, 1, 1],
        [0, 1, 2, 2],
        [0, 0, 1, 1],
        [0, 1, 2, 2],
        [0, 0, 0, 1],
        [0, 0, 1, 1],
    ]
)
LABELS = np.array([3, 1, 3, 7, 1, 7])


def _groups() -> xr.DataArray:
    return xr.DataArray(TABLE, dims=("sample", "layer"), coords={"sample": np.arange(10, 16), "layer": LAYERS})


def test_mechanisms_order_shares_coverage():
    ds = mechanisms_dataset(_groups(), LABELS)
    assert list(ds["composition"].values) == [
        "conv1+relu1|fc1+fc3",  # 2 nodes, share 3/6
        "conv1+relu1+fc1|fc3",  # 2 nodes, share 1/6
        "conv1|relu1|fc1+fc3",  # 3 nodes, share 2/6: fewer nodes come first
    ]
    np.testing.assert_array_equal(ds["n_nodes"].values, [2, 2, 3])
    np.testing.assert_array_equal(ds["n_intermediate"].values, [1, 1, 2])  # the output node left out
    np.testing.assert_array_equal(ds["n_samples"].values, [3, 1, 2])
    np.testing.assert_allclose(ds["share"].values, [3 / 6, 1 / 6, 2 / 6])
    np.testing.assert_allclose(ds["coverage"].values, [0.5, 4 / 6, 1.0])
    assert ds["coverage"].values[-1] == 1.0
    np.testing.assert_array_equal(ds["sample_mechanism"].values, [0, 2, 0, 2, 1, 0])
    np.testing.assert_array_equal(ds["sample"].values, np.arange(10, 16))
    np.testing.assert_array_equal(ds["group"].sel(mechanism=2).values, [0, 1, 2, 2])
    # per-class counts: classes 1, 3, 7
    np.testing.assert_array_equal(ds["class"].values, [1, 3, 7])
    np.testing.assert_array_equal(ds["class_count"].values, [[0, 2, 1], [1, 0, 0], [1, 0, 1]])
    assert ds["class_count"].sum() == 6


def test_mechanisms_tie_broken_by_composition_and_no_labels():
    table = np.array([[0, 1, 1], [0, 0, 1]])  # two 2-node mechanisms, one sample each
    ds = mechanisms_dataset(table, layers=["a", "b", "c"])
    assert list(ds["composition"].values) == ["a+b|c", "a|b+c"]
    assert "class_count" not in ds
    np.testing.assert_allclose(ds["coverage"].values, [0.5, 1.0])


def test_mechanisms_netcdf_roundtrip(tmp_path):
    ds = mechanisms_dataset(_groups(), LABELS)
    ds.to_netcdf(tmp_path / "m.nc")
    back = xr.load_dataset(tmp_path / "m.nc")
    assert list(back["composition"].values) == list(ds["composition"].values)


def test_composition_roundtrip_and_validation():
    s = composition_string([0, 0, 1, 2, 2], ["a", "b", "c", "d", "e"])
    assert s == "a+b|c|d+e"
    assert parse_composition(s) == [["a", "b"], ["c"], ["d", "e"]]
    with pytest.raises(ValueError, match="0 … G−1"):
        mechanisms_dataset(np.array([[0, 2, 2]]))
    with pytest.raises(ValueError, match="0 … G−1"):
        mechanisms_dataset(np.array([[1, 1, 1]]))
    with pytest.raises(ValueError, match="contain neither"):
        mechanisms_dataset(np.array([[0, 1]]), layers=["a|b", "c"])
    with pytest.raises(ValueError, match="labels"):
        mechanisms_dataset(TABLE, LABELS[:3])


def test_coverage_levels():
    ds = mechanisms_dataset(_groups())
    assert coverage_levels(ds, (0.5, 0.6, 1.0)) == [0, 1, 2]
    assert coverage_levels(ds, (4 / 6,)) == [1]  # exactly reached, up to rounding
    assert coverage_levels(ds) == [2, 2, 2]  # 0.85, 0.99, 1.0 all need the third
    # the paper's Fig. 11: 84.6 %, 98.8 %, 100 %
    paper = xr.Dataset({"coverage": ("mechanism", [0.846, 0.988, 1.0])})
    assert coverage_levels(paper, (0.846, 0.988, 1.0)) == [0, 1, 2]
    assert coverage_levels(paper) == [1, 2, 2]  # 0.85 > 0.846
    assert coverage_levels(paper, tol=0.005) == [0, 1, 2]  # the paper's rounded wording
    with pytest.raises(ValueError, match="coverage level"):
        coverage_levels(ds, (0.0,))
