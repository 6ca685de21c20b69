"""CKA between layers (paper 004 §3.3.2) against explicit NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from causalxai.tracer.cka import centered_gram, cka_dataset, cka_matrix, linear_cka


# ---------------------------------------------------------------- references (the paper's formula)
def ref_centered(k: np.ndarray) -> np.ndarray:
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return h @ k @ h


def ref_hsic(hkh: np.ndarray, l_gram: np.ndarray) -> float:
    """HSIC = (n − 1)⁻² Tr(H K H L); the trace of the product without forming it."""
    n = l_gram.shape[0]
    return float(np.einsum("ij,ji->", hkh, l_gram)) / (n - 1) ** 2


def ref_linear_gram(x: np.ndarray) -> np.ndarray:
    f = x.reshape(x.shape[0], -1).astype(np.float64)
    return f @ f.T


def ref_rbf_gram(x: np.ndarray, frac: float) -> np.ndarray:
    """Kornblith et al. (2019) ``gram_rbf``: median of all squared distances (diagonal included)."""
    f = x.reshape(x.shape[0], -1).astype(np.float64)
    g = f @ f.T
    sq = np.diag(g)
    d2 = sq[:, None] + sq[None, :] - 2 * g
    return np.exp(-d2 / (2 * frac**2 * np.median(d2)))


def ref_matrix(layers: list[np.ndarray], gram) -> np.ndarray:
    grams = [gram(x) for x in layers]
    hkh = [ref_centered(k) for k in grams]
    hsic = np.array([[ref_hsic(hk, g) for g in grams] for hk in hkh])
    return hsic / np.sqrt(np.outer(np.diag(hsic), np.diag(hsic)))


def make_layers(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Related layers of mixed widths (d < n and d > n) and shapes, like a small network's."""
    x = rng.normal(size=(n, 3, 5, 5))  # conv-shaped input, d = 75
    w1 = rng.normal(size=(75, 150))
    h1 = np.tanh(x.reshape(n, -1) @ w1 / 8)  # d = 150 > n for small n
    h2 = np.maximum(h1 @ rng.normal(size=(150, 12)), 0)  # d = 12
    h3 = h2 @ rng.normal(size=(12, 4)) + 0.3 * rng.normal(size=(n, 4))  # d = 4, partly noise
    return [x, h1, h2, h3]


def test_linear_float64_matches_reference_1e10() -> None:
    rng = np.random.default_rng(0)
    layers = make_layers(rng, 120)
    ref = ref_matrix(layers, ref_linear_gram)
    got = cka_matrix([torch.from_numpy(a) for a in layers]).numpy()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    # pairwise function: Gram path (wide) and feature-space path (narrow) agree with the reference
    for i, j in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        assert abs(linear_cka(torch.from_numpy(layers[i]), torch.from_numpy(layers[j])) - ref[i, j]) < 1e-10


def test_float32_production_path_within_1e5() -> None:
    """float32 activations (what hooks record) through the default float64 path, and the float32 path."""
    rng = np.random.default_rng(1)
    layers = make_layers(rng, 677)  # n = 676 interventions + the original (MNIST, 3×3 stride 1)
    ref = ref_matrix(layers, ref_linear_gram)
    acts32 = {f"l{i}": torch.from_numpy(a).float() for i, a in enumerate(layers)}
    np.testing.assert_allclose(cka_matrix(acts32).numpy(), ref, rtol=0, atol=1e-5)
    fast = cka_matrix(acts32, dtype=torch.float32)  # float32 Grams, float64 HSIC reduction
    assert fast.dtype == torch.float64
    np.testing.assert_allclose(fast.numpy(), ref, rtol=0, atol=1e-5)


def test_symmetric_unit_diagonal_in_unit_interval() -> None:
    rng = np.random.default_rng(2)
    acts = [torch.from_numpy(a) for a in make_layers(rng, 60)]
    for kernel in ("linear", "rbf"):
        c = cka_matrix(acts, kernel=kernel)
        assert torch.equal(c, c.T)
        assert torch.equal(c.diagonal(), torch.ones(len(acts), dtype=torch.float64))
        assert bool(((c >= 0) & (c <= 1)).all())


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(kernel: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 10))
    y = np.tanh(x @ rng.normal(size=(10, 7))) + 0.5 * rng.normal(size=(80, 7))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    xt = 3.7 * x @ q + 2.0  # rotated, scaled (and translated: centring removes it)
    c = cka_matrix([torch.from_numpy(a) for a in (x, y, xt)], kernel=kernel).numpy()
    assert abs(c[0, 2] - 1.0) < 1e-10
    assert abs(c[0, 1] - c[2, 1]) < 1e-10
    assert c[0, 1] < 0.99  # and the test is not vacuous


@pytest.mark.parametrize("frac", [0.8, 0.4])
def test_rbf_matches_reference(frac: float) -> None:
    rng = np.random.default_rng(4)
    layers = make_layers(rng, 91)  # odd n: numpy's median of n² values is one element...
    ref = ref_matrix(layers, lambda a: ref_rbf_gram(a, frac))
    got = cka_matrix([torch.from_numpy(a) for a in layers], kernel="rbf", sigma_frac=frac).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    layers = make_layers(rng, 64)  # ...even n: the mean of the two middle values
    ref = ref_matrix(layers, lambda a: ref_rbf_gram(a, frac))
    got = cka_matrix([torch.from_numpy(a) for a in layers], kernel="rbf", sigma_frac=frac).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_rbf_zero_median_falls_back_to_nonzero_distances() -> None:
    x = torch.zeros(10, 2, dtype=torch.float64)
    x[:3, 0] = torch.tensor([1.0, 2.0, 4.0])  # 7 identical rows: median squared distance is 0
    k, _ = centered_gram(x, "rbf")
    assert bool(torch.isfinite(k).all()) and torch.linalg.matrix_norm(k) > 0.1


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_degenerate_layers_convention(kernel: str) -> None:
    """Constant layers: CKA 1 with each other, 0 with a varying layer; never NaN."""
    rng = np.random.default_rng(5)
    n = 50
    varying = torch.from_numpy(rng.normal(size=(n, 6)))
    const = torch.full((n, 4), 0.3, dtype=torch.float32)  # float32 constant: rounding-level noise
    zeros = torch.zeros(n, 2, 3)
    c = cka_matrix({"a": varying, "const": const, "zero": zeros, "b": varying * 2}, kernel=kernel)
    assert not bool(torch.isnan(c).any())
    expected = torch.tensor(
        [[1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=torch.float64
    )
    torch.testing.assert_close(c, expected, rtol=0, atol=1e-12)
    if kernel == "linear":
        assert linear_cka(const, zeros) == 1.0
        assert linear_cka(const, varying) == 0.0
        assert linear_cka(varying[:, :1], const) == 0.0  # feature-space path


def test_degeneracy_boundary_relative_variation() -> None:
    """Variation of 1e-5 relative to the layer's magnitude is signal; 1e-8 is rounding noise."""
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.normal(size=(40, 5)))
    c = cka_matrix([x, 100.0 + 1e-3 * x, 100.0 + 1e-6 * x])
    assert abs(float(c[0, 1]) - 1.0) < 1e-9
    assert float(c[0, 2]) == 0.0 and float(c[1, 2]) == 0.0
    assert abs(linear_cka(x, 100.0 + 1e-3 * x) - 1.0) < 1e-9  # feature-space path, same rule
    assert linear_cka(x, 100.0 + 1e-6 * x) == 0.0


def test_cka_dataset_coords_and_values() -> None:
    rng = np.random.default_rng(7)
    layers = make_layers(rng, 30)
    acts = {name: torch.from_numpy(a).float() for name, a in zip(["conv", "fc1", "fc2", "out"], layers)}
    da = cka_dataset(acts)
    assert isinstance(da, xr.DataArray)
    assert da.dims == ("layer_i", "layer_j")
    assert list(da.coords["layer_i"].values) == ["conv", "fc1", "fc2", "out"]
    assert list(da.coords["layer_j"].values) == ["conv", "fc1", "fc2", "out"]
    assert da.attrs["kernel"] == "linear" and da.attrs["n_samples"] == 30
    np.testing.assert_array_equal(da.values, cka_matrix(list(acts.values())).numpy())
    assert cka_dataset(acts, kernel="rbf").attrs["sigma_frac"] == 0.8


def test_bad_inputs_fail_with_a_message() -> None:
    x = torch.zeros(5, 3)
    with pytest.raises(ValueError, match="same number of samples"):
        cka_matrix([x, torch.zeros(4, 3)])
    with pytest.raises(ValueError, match="at least 2 samples"):
        cka_matrix([torch.zeros(1, 3)])
    with pytest.raises(ValueError, match="none"):
        cka_matrix([])
    with pytest.raises(ValueError, match="kernel"):
        cka_matrix([x], kernel="poly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma_frac"):
        cka_matrix([torch.randn(5, 3)], kernel="rbf", sigma_frac=0.0)
