"""Eq. (4) for many cells, bootstrap replicates and permutations at once (paper 000 §2.2).

Every estimate of the effects step is a weighted form of :func:`causalxai.study.estimators.ite.ite`.
For a cell with treated models ``T`` and control models ``C`` (indices into a block of
models whose linear Gram matrix is known), and non-negative weights ``w`` per model, image
and *column* (a column is one evaluation: the point estimate, a bootstrap replicate or a
permutation of the labels),

    eq4(w) = Σ_T w_a k_aa / Σ_T w_a + Σ_C w_b k_bb / Σ_C w_b − 2 Σ_{T×C} w_a w_b k_ab / (Σ_T w_a Σ_C w_b).

All weights 1 give eq. (4) exactly; a model whose map was dropped (NaN) has weight 0 for
that image; a bootstrap replicate weights each model by how often it was drawn (a resample
of models is a weighting of the Gram matrix's rows and columns, so no Gram matrix is
recomputed); a permutation moves the 0/1 weights between ``T`` and ``C``. The unbiased
MMD² (``mmd_unbiased``) replaces the two self terms by the weighted means over pairs of
distinct models within each group, ``(wᵀKw − Σ w_a² k_aa) / ((Σw)² − Σ w_a²)`` (with 0/1
weights the U-statistic; a model the bootstrap draws twice is not paired with itself, which
would pull the replicates towards k(a, a) and bias them upwards).

Columns are evaluated together as one batched matrix product per cell,
``(I, n_T, n_C) @ (I, n_C, J)``: the hot path has no Python loop over models, replicates
or permutations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from causalxai.study.estimators.bandwidth import BANDWIDTHS, fixed_gamma, median_gamma

__all__ = ["KERNELS", "ESTIMATORS", "KernelSpec", "Block", "BucketKernel", "kernel_from_gram", "self_kernel",
           "weighted_effect"]

KERNELS = ("rbf", "linear", "poly", "cosine")
ESTIMATORS = ("eq4", "mmd_unbiased")


@dataclass(frozen=True)
class KernelSpec:
    """Kernel, RBF bandwidth rule and estimator of the effects (config ``effects``)."""

    kernel: str = "rbf"
    bandwidth: str = "fixed"
    estimator: str = "eq4"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"effects.kernel {self.kernel!r} is unknown: choose from {list(KERNELS)}")
        if self.bandwidth not in BANDWIDTHS:
            raise ValueError(f"effects.bandwidth {self.bandwidth!r} is unknown: choose from {list(BANDWIDTHS)}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"effects.estimator {self.estimator!r} is unknown: choose from {list(ESTIMATORS)}")


def _gather(m: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``m[:, rows, cols]`` (broadcast index tensors), C-contiguous. On the CPU it is one
    ``numpy.take`` of the flat positions per image, which gathers the same entries about 1.7x as
    fast as torch's advanced indexing with the block's batched product after it (the per-cell
    kernel blocks were a fifth of the sensitivity report)."""
    if m.device.type != "cpu":
        return m[:, rows, cols]
    flat = rows.numpy() * m.shape[-1] + cols.numpy()
    taken = np.take(np.ascontiguousarray(m.numpy()).reshape(m.shape[0], -1), flat.ravel(), axis=1)
    return torch.from_numpy(taken.reshape(m.shape[0], *flat.shape))


@dataclass
class Block:
    """The linear Gram matrix of a set of models' outputs, per image.

    Attributes:
        gram: ``(I, n, n)`` float64, ``o_a · o_b``.
        sq: ``(I, n)`` squared norms (the diagonal).
        valid: ``(I, n)`` float64, 1 where the model's output for the image is finite.
        dim: the outputs' dimension ``d``.
    """

    gram: torch.Tensor
    sq: torch.Tensor
    valid: torch.Tensor
    dim: int

    @classmethod
    def from_outputs(cls, outputs: np.ndarray, image_chunk: int = 16) -> "Block":
        """From outputs ``(n, I, ...)`` (flattened per image); NaN outputs become invalid zeros."""
        o = np.asarray(outputs)
        o = o.reshape(o.shape[0], o.shape[1], -1)
        valid = np.isfinite(o).all(-1)  # (n, I)
        n, n_img, d = o.shape
        gram = torch.empty((n_img, n, n), dtype=torch.float64)
        for start in range(0, n_img, image_chunk):  # float64 a few images at a time
            x = torch.as_tensor(np.nan_to_num(o[:, start : start + image_chunk]), dtype=torch.float64).transpose(0, 1)
            gram[start : start + image_chunk] = x @ x.transpose(-1, -2)
        sq = torch.diagonal(gram, dim1=-2, dim2=-1).clone()
        return cls(gram, sq, torch.as_tensor(valid.T, dtype=torch.float64), d)

    def sub(self, idx: np.ndarray) -> "Block":
        """The block of models ``idx`` (positions in this block)."""
        i = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return Block(self.gram[:, i][:, :, i], self.sq[:, i], self.valid[:, i], self.dim)

    def sq_dist(self) -> torch.Tensor:
        """Squared distances ``(I, n, n)``."""
        return (self.sq[:, :, None] + self.sq[:, None, :] - 2 * self.gram).clamp_min(0)

    def median_gamma(self, sqd: torch.Tensor | None = None, u: torch.Tensor | None = None,
                     pooled: bool = False) -> torch.Tensor:
        """The median-heuristic γ over the distinct pairs of valid outputs, per image ``(I,)``,
        or one value over all images (``pooled``).

        Args:
            sqd: the block's squared distances, if already computed.
            u: only the pairs among these positions.
        """
        u = torch.arange(self.sq.shape[-1]) if u is None else u
        iu = torch.triu_indices(u.numel(), u.numel(), offset=1)
        a, b = u[iu[0]], u[iu[1]]
        d = _gather(self.sq_dist() if sqd is None else sqd, a, b)  # the distinct pairs only
        d = torch.where((self.valid[:, a] * self.valid[:, b]) > 0, d, torch.full_like(d, float("nan")))
        vu, squ = self.valid[:, u], self.sq[:, u]
        scale = (squ * vu).sum(-1) / vu.sum(-1).clamp_min(1)  # typical squared norm: the median's zero test
        if pooled:
            return median_gamma(d.reshape(1, -1), scale.mean()[None])[0]
        return median_gamma(d, scale)


def kernel_from_gram(block: Block, spec: KernelSpec, gamma: torch.Tensor | float | None) -> torch.Tensor:
    """The kernel matrix ``(I, n, n)`` of a block (``gamma``: a number, ``(I,)`` or None for ``1/d``)."""
    g = block.gram
    if spec.kernel == "linear":
        return g
    if spec.kernel == "poly":
        return (g / block.dim + 1) ** 3
    if spec.kernel == "cosine":
        r = block.sq.sqrt()
        den = r[:, :, None] * r[:, None, :]
        return torch.where(den > 0, g / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(g))
    gm = torch.as_tensor(fixed_gamma(block.dim) if gamma is None else gamma, dtype=torch.float64)
    gm = gm.reshape(-1, 1, 1) if gm.ndim else gm
    gsq = gm.reshape(-1, 1) * block.sq if gm.ndim else gm * block.sq
    # exp(-γ (|a|² + |b|² − 2 a·b)), in place on one copy of the Gram matrix
    k = g * (2 * gm)
    k -= gsq[:, :, None]
    k -= gsq[:, None, :]
    return k.clamp_(max=0).exp_()


def self_kernel(block: Block, spec: KernelSpec) -> torch.Tensor:
    """``k(a, a)`` for each model and image ``(I, n)``."""
    sq = block.sq
    if spec.kernel == "rbf":
        return torch.ones_like(sq)
    if spec.kernel == "linear":
        return sq
    if spec.kernel == "poly":
        return (sq / block.dim + 1) ** 3
    return (sq > 0).to(sq.dtype)


def weighted_effect(
    k_tc: torch.Tensor,
    self_t: torch.Tensor | None,
    self_c: torch.Tensor | None,
    wt: torch.Tensor,
    wc: torch.Tensor,
    estimator: str = "eq4",
    k_tt: torch.Tensor | None = None,
    k_cc: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weighted estimate of the module docstring for every image and column: ``(I, J)``.

    Args:
        k_tc: kernel between treated and control ``(I, n_t, n_c)``.
        self_t, self_c: ``k(a, a)`` ``(I, n_t)``, ``(I, n_c)``; None: 1 for every model (the
            RBF kernel), which skips a product over the weights (the same numbers).
        wt, wc: weights ``(I, n_t, J)``, ``(I, n_c, J)``.
        estimator: ``eq4`` or ``mmd_unbiased`` (then ``k_tt``, ``k_cc`` are needed).

    Returns:
        NaN where a group has no weight (fewer than two distinct models for ``mmd_unbiased``).
    """
    st, sc = wt.sum(1), wc.sum(1)
    cross = ((k_tc @ wc) * wt).sum(1)
    with np.errstate(all="ignore"):
        if estimator == "eq4":
            ok = (st > 0) & (sc > 0)
            st1, sc1 = torch.where(ok, st, 1.0), torch.where(ok, sc, 1.0)
            self_wt = st if self_t is None else (self_t[..., None] * wt).sum(1)
            self_wc = sc if self_c is None else (self_c[..., None] * wc).sum(1)
            out = self_wt / st1 + self_wc / sc1 - 2 * cross / (st1 * sc1)
        else:
            if k_tt is None or k_cc is None:
                raise ValueError("mmd_unbiased needs the within-group kernels k_tt and k_cc")
            # pairs of distinct models only: a model drawn twice by the bootstrap is not a pair
            sq_t, sq_c = (wt * wt).sum(1), (wc * wc).sum(1)
            pt, pc = st * st - sq_t, sc * sc - sq_c
            ok = (pt > 0) & (pc > 0)
            pt1, pc1 = torch.where(ok, pt, 1.0), torch.where(ok, pc, 1.0)
            st1, sc1 = torch.where(ok, st, 1.0), torch.where(ok, sc, 1.0)
            within_t = ((k_tt @ wt) * wt).sum(1) - (sq_t if self_t is None else (self_t[..., None] * wt * wt).sum(1))
            within_c = ((k_cc @ wc) * wc).sum(1) - (sq_c if self_c is None else (self_c[..., None] * wc * wc).sum(1))
            out = within_t / pt1 + within_c / pc1 - 2 * cross / (st1 * sc1)
    return torch.where(ok, out, torch.full_like(out, float("nan")))


class BucketKernel:
    """The kernel of one output over one bucket's models, shared by all the bucket's cells.

    With the ``fixed`` or ``median_bucket`` bandwidth (or a kernel without one) the kernel
    matrix is computed once; with ``median_cell`` each cell computes its own from the
    shared squared distances. :meth:`cell` evaluates a cell's columns.
    """

    def __init__(self, block: Block, spec: KernelSpec, gamma: torch.Tensor | float | None = None,
                 cache: dict | None = None):
        """``cache``: a dict shared by the kernels of one block (e.g. both estimators), which
        keeps each cell's ``median_cell`` bandwidth so it is computed once."""
        self.block, self.spec = block, spec
        self.cache = {} if cache is None else cache
        self.per_cell = spec.kernel == "rbf" and spec.bandwidth == "median_cell"
        self.k = None if self.per_cell else kernel_from_gram(block, spec, gamma)
        self.sqd = block.sq_dist() if self.per_cell else None
        self.kself = self_kernel(block, spec)
        self.n = block.sq.shape[-1]

    def _take(self, m: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``m[:, rows][:, :, cols]`` as one gather of exactly the entries needed."""
        return _gather(m, rows[:, None], cols[None, :])

    def _cell_gamma(self, u: torch.Tensor) -> torch.Tensor:
        """``median_cell``: γ per image from the distinct valid pairs of the models ``u`` (cached)."""
        key = torch.sort(u).values.numpy().tobytes()  # the median does not depend on the order
        if key not in self.cache:
            self.cache[key] = self.block.median_gamma(self.sqd, u)
        return self.cache[key]

    def _bucket_kernel(self, u: torch.Tensor) -> torch.Tensor:
        """The kernel over the whole bucket, in its own order: the shared one, or (``median_cell``)
        the one of the cell ``u`` that holds every model of the bucket (cached: all such cells share it)."""
        if not self.per_cell:
            return self.k
        key = ("k", torch.sort(u).values.numpy().tobytes())
        if key not in self.cache:
            self.cache[key] = torch.exp(-self._cell_gamma(u)[:, None, None] * self.sqd)
        return self.cache[key]

    def _cell_kernel(self, u: torch.Tensor) -> torch.Tensor:
        """``(I, n_u, n_u)`` over bucket positions ``u`` (a cell of part of the bucket)."""
        if not self.per_cell:
            return self._take(self.k, u, u)
        return torch.exp(-self._cell_gamma(u)[:, None, None] * self._take(self.sqd, u, u))

    def cell(
        self, treated: np.ndarray, control: np.ndarray, columns: np.ndarray, permutations: np.ndarray | None = None,
        estimators: tuple[str, ...] | None = None,
    ):
        """One cell's estimates for weighted columns and for label permutations.

        Args:
            treated, control: positions of the cell's models in the bucket.
            columns: model weights ``(J, n)`` over the bucket (row 0 all ones: the point
                estimate; bootstrap counts after it), multiplied by each image's validity.
            permutations: ``(P, n_t + n_c)`` 0/1 over the cell's models (treated first),
                the models a permutation treats; or None.
            estimators: evaluate these estimators on the same kernel blocks and return a
                list of results, one per estimator (default: the spec's, one result).

        Returns:
            ``(J, I)`` estimates and ``(P, I)`` permutation estimates (or None).
        """
        ests = [self.spec.estimator] if estimators is None else list(estimators)
        mmd = "mmd_unbiased" in ests
        t = torch.as_tensor(np.asarray(treated, np.int64))
        c = torch.as_tensor(np.asarray(control, np.int64))
        u = torch.cat([t, c])
        nt = t.numel()
        valid = self.block.valid
        cols = torch.as_tensor(np.asarray(columns, dtype=np.float64))
        # the cell's kernel blocks, gathered once for every estimator: the whole cell's when
        # permutations need it, else only the treated x control (and within-group) blocks
        permute = permutations is not None and len(permutations) > 0
        k_uu = self._cell_kernel(u) if permute and u.numel() < self.n else None
        if k_uu is not None:
            k_tc = k_uu[:, :nt, nt:]
            k_tt, k_cc = (k_uu[:, :nt, :nt], k_uu[:, nt:, nt:]) if mmd else (None, None)
        elif permute or not self.per_cell:
            k_b = self._bucket_kernel(u) if permute else self.k
            k_tc = self._take(k_b, t, c)
            k_tt, k_cc = (self._take(k_b, t, t), self._take(k_b, c, c)) if mmd else (None, None)
        else:  # median_cell without permutations: exp of the blocks needed only
            g = self._cell_gamma(u)[:, None, None]
            k_tc = torch.exp(-g * self._take(self.sqd, t, c))
            k_tt, k_cc = (torch.exp(-g * self._take(self.sqd, t, t)),
                          torch.exp(-g * self._take(self.sqd, c, c))) if mmd else (None, None)
        wt = valid.index_select(1, t)[:, :, None] * cols.index_select(1, t).T[None]
        wc = valid.index_select(1, c)[:, :, None] * cols.index_select(1, c).T[None]
        unit = self.spec.kernel == "rbf"  # k(a, a) = 1: weighted_effect needs no self-kernel
        st, sc = (None, None) if unit else (self.kself.index_select(1, t), self.kself.index_select(1, c))
        if permute:
            z = torch.as_tensor(np.asarray(permutations, dtype=np.float64))
            if k_uu is None:  # the cell holds every model of the bucket: use the bucket's kernel as it is
                k_p, su, vu = k_b, None if unit else self.kself, valid
                zb = torch.zeros((z.shape[0], self.n), dtype=z.dtype)
                zb[:, u] = z
                z = zb
            else:
                k_p, su, vu = k_uu, None if unit else self.kself.index_select(1, u), valid.index_select(1, u)
            pt = vu[:, :, None] * z.T[None]
            pc = vu[:, :, None] * (1 - z).T[None]
        out = []
        for e in ests:
            m = e == "mmd_unbiased"
            est = weighted_effect(k_tc, st, sc, wt, wc, e, k_tt if m else None, k_cc if m else None).T
            perm = None
            if permute:
                perm = weighted_effect(k_p, su, su, pt, pc, e, k_p if m else None, k_p if m else None).T
            out.append((est, perm))
        return out if estimators is not None else out[0]
