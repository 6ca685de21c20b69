"""The weighted, many-column evaluation against the pair-by-pair definition: bootstrap
counts as replicated models, NaN outputs as dropped models, permutations as relabelled groups."""

import numpy as np
import pytest

from causalxai.study.estimators.estimate import Block, BucketKernel, KernelSpec

RNG = np.random.default_rng(0)
N, N_IMAGES, D = 12, 3, 8
OUT = RNG.uniform(size=(N, N_IMAGES, D))
OUT[4, 1] = np.nan  # model 4's output on image 1 is dropped


def _cell_gamma(t, c, i):
    """median_cell: 1/(2 median) over the cell's distinct valid models on image i."""
    u = np.concatenate([OUT[t, i], OUT[c, i]])
    u = u[np.isfinite(u).all(-1)]
    d = [np.sum((u[x] - u[y]) ** 2) for x in range(len(u)) for y in range(x + 1, len(u))]
    return 1 / (2 * np.median(d))


def _reference(t, c, counts, kernel, gamma, estimator, numpy_ite, numpy_kernel, cell=None):
    """Per image: replicate each model by its count, drop NaN outputs, then the definition.
    ``gamma="median_cell"``: the bandwidth of the cell ``cell`` (default (t, c))."""
    rows = []
    for i in range(N_IMAGES):
        a = np.concatenate([np.repeat(OUT[[m], i], counts[m], axis=0) for m in t])
        b = np.concatenate([np.repeat(OUT[[m], i], counts[m], axis=0) for m in c])
        a, b = a[np.isfinite(a).all(-1)], b[np.isfinite(b).all(-1)]
        g = _cell_gamma(*(cell or (t, c)), i) if gamma == "median_cell" else gamma
        if estimator == "eq4" or (counts[t] <= 1).all() and (counts[c] <= 1).all():
            rows.append(numpy_ite(a, b, kernel, g, estimator))
        else:  # the unbiased MMD² of a resample: within-group pairs of distinct models, weighted
            rows.append(_weighted_mmd(t, c, counts, i, kernel, g, numpy_kernel))
    return np.array(rows)


def _weighted_mmd(t, c, counts, i, kernel, gamma, numpy_kernel):
    g = 1 / D if gamma is None else gamma

    def within(models):
        ms = [m for m in models if counts[m] and np.isfinite(OUT[m, i]).all()]
        num = sum(counts[a] * counts[b] * numpy_kernel(OUT[a, i], OUT[b, i], kernel, g)
                  for a in ms for b in ms if a != b)
        den = sum(counts[a] * counts[b] for a in ms for b in ms if a != b)
        return num / den if den else np.nan  # fewer than two distinct models drawn

    tt = [m for m in t if np.isfinite(OUT[m, i]).all()]
    cc = [m for m in c if np.isfinite(OUT[m, i]).all()]
    cross = sum(counts[a] * counts[b] * numpy_kernel(OUT[a, i], OUT[b, i], kernel, g) for a in tt for b in cc)
    cross /= sum(counts[a] for a in tt) * sum(counts[b] for b in cc)
    return within(t) + within(c) - 2 * cross


@pytest.mark.parametrize("estimator", ["eq4", "mmd_unbiased"])
@pytest.mark.parametrize("kernel,bandwidth,gamma", [("rbf", "fixed", None), ("rbf", "median_bucket", 0.37),
                                                    ("rbf", "median_cell", "median_cell"), ("linear", "fixed", None),
                                                    ("poly", "fixed", None), ("cosine", "fixed", None)])
@pytest.mark.parametrize("cell", ["whole_bucket", "capped"])
def test_columns_match_the_definition(estimator, kernel, bandwidth, gamma, cell, numpy_ite, numpy_kernel):
    spec = KernelSpec(kernel, bandwidth, estimator)
    block = Block.from_outputs(OUT)
    t, c = (np.array([0, 3, 4, 7, 9]), np.array([1, 2, 5, 6, 8, 10, 11])) if cell == "whole_bucket" else \
        (np.array([0, 4, 7]), np.array([2, 5, 11, 6]))
    counts = np.ones((3, N), dtype=int)
    counts[1] = RNG.integers(0, 3, N)
    counts[1, t[:2]] = [2, 1]
    counts[1, c[:2]] = [1, 3]
    counts[2] = RNG.integers(1, 4, N)
    u = np.concatenate([t, c])
    z = np.zeros((2, u.size))
    z[0, [0, 2, 5]] = 1
    z[1, [1, 3, 4]] = 1
    est, perm = BucketKernel(block, spec, None if gamma in (None, "median_cell") else gamma).cell(t, c, counts, z)
    g = gamma if gamma != "median_cell" else "median_cell"
    for j in range(3):
        np.testing.assert_allclose(est[j].numpy(),
                                   _reference(t, c, counts[j], kernel, g, estimator, numpy_ite, numpy_kernel),
                                   rtol=1e-10, err_msg=f"column {j}")
    for p in range(2):  # a permutation keeps the cell's bandwidth (the same pooled models)
        tp, cp = u[z[p] == 1], u[z[p] == 0]
        ref = _reference(tp, cp, np.ones(N, int), kernel, g, estimator, numpy_ite, numpy_kernel, cell=(t, c))
        np.testing.assert_allclose(perm[p].numpy(), ref, rtol=1e-10, err_msg=f"permutation {p}")


def test_empty_groups_are_nan():
    block = Block.from_outputs(OUT)
    counts = np.ones((2, N))
    counts[1, [0, 1]] = 0  # the treated models not drawn in replicate 1
    est, _ = BucketKernel(block, KernelSpec()).cell(np.array([0, 1]), np.array([2, 3, 4]), counts)
    assert np.isfinite(est[0].numpy()).all() and np.isnan(est[1].numpy()).all()
    # mmd_unbiased needs two draws per group
    est, _ = BucketKernel(block, KernelSpec(estimator="mmd_unbiased")).cell(np.array([0]), np.array([2, 3]), counts[:1])
    assert np.isnan(est.numpy()).all()


def test_bad_spec():
    with pytest.raises(ValueError, match="effects.bandwidth"):
        KernelSpec(bandwidth="silverman")
    with pytest.raises(ValueError, match="effects.estimator"):
        KernelSpec(estimator="mmd")


@pytest.mark.parametrize("estimator", ["eq4", "mmd_unbiased"])
def test_unit_self_kernel_skips_its_product_with_the_same_numbers(estimator):
    """``self_t = None`` (k(a, a) = 1, the RBF kernel) gives what an all-ones self-kernel gives, bit for bit."""
    import torch

    from causalxai.study.estimators.estimate import weighted_effect

    g = torch.Generator().manual_seed(3)
    k = torch.rand((4, 7, 7), generator=g, dtype=torch.float64)
    k = (k + k.transpose(1, 2)) / 2
    wt = torch.randint(0, 3, (4, 3, 5), generator=g).to(torch.float64)
    wc = torch.randint(0, 3, (4, 4, 5), generator=g).to(torch.float64)
    k_tc, k_tt, k_cc = k[:, :3, 3:], k[:, :3, :3], k[:, 3:, 3:]
    ones = weighted_effect(k_tc, torch.ones((4, 3), dtype=torch.float64), torch.ones((4, 4), dtype=torch.float64),
                           wt, wc, estimator, k_tt, k_cc)
    unit = weighted_effect(k_tc, None, None, wt, wc, estimator, k_tt, k_cc)
    torch.testing.assert_close(unit, ones, rtol=0, atol=0, equal_nan=True)
