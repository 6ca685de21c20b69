"""Counterfactuals from the trained generator, their metrics, and TRACER on them
(paper 004 §3.5, App. C, Fig. 8).

:func:`select_samples` picks the test samples: **all misclassified** ones (target: the true
label, "contrastive explanations for misclassified samples") plus a seeded sample of
``n_correct`` correctly classified ones whose target is drawn uniformly among the other
classes; coordinate ``kind`` (``misclassified`` / ``correct``). ``n_misclassified`` (our
choice; default ``None``, the paper's all) caps the misclassified ones at a seeded sample of
that many, in test order: a weak classifier on a large test split (CIFAR's 10,000 images, a
fifth misclassified) would otherwise send thousands of samples, each with its counterfactual,
through TRACER. The correct samples and their targets are drawn before the cap and do not
depend on it.

:func:`counterfactuals` (``counterfactuals.nc``): for each sample ``x`` and target ``y*``,
``K = n_candidates`` candidates ``x*_i = D([E_x(x) + δ_i; o(y*)])`` with ``δ_0 = 0`` and
``δ_i ~ N(0, σ² I)`` for ``i ≥ 1`` (the Remark of §3.5; one ``torch.Generator`` seeded with
``seed``). Metrics per candidate, all in TRACER's **raw** pixel space ``(x + 1)/2`` ∈ [0, 1]
(``to_raw``, default :func:`causalxai.data.dataset.to_raw`), summed over every pixel and channel of one image:

* ``valid``: the classifier's prediction on ``x*`` is ``y*``; ``prob_target``: its softmax at ``y*``;
* ``proximity_l1`` = ``‖x* − x‖₁``, ``proximity_l2`` = ``‖x* − x‖₂`` (norms, not means);
* ``sparsity``: the share of pixels changed by more than ``sparsity_tol`` (0.05 raw, i.e.
  ~13 of 255 grey levels): lower is sparser;
* ``plausibility_l1``: ``‖x* − r‖₁`` to the nearest real image ``r`` **of the target class**
  in the reference pool (default in the workflow: the *training* split, which the GAN never
  stored; a test-split pool works too). Reference images identical to the original ``x``
  are skipped, so a test pool never offers the sample itself;
* ``disc_score``: ``sigmoid(D(x*))``, the discriminator's probability that ``x*`` is real
  (NaN without a discriminator).

Per sample, ``nn_distance`` = ``‖x − r‖₁`` from the original to its nearest target-class
pool image: the proximity the nearest-neighbour counterfactual itself would have (the
baseline the GAN must beat: "minimal changes to the original data").

**CARLA's metrics** of the chosen counterfactual (:mod:`causalxai.counterfactual.metrics`, the
same for the Wachter baseline, :mod:`causalxai.counterfactual.wachter`): ``l0`` (pixels changed
by more than ``sparsity_tol``), ``linf``, ``ynn`` (share of the ``ynn_k`` nearest pool images the
classifier assigns to the target), ``redundancy``; ``seconds_per_counterfactual`` (attribute) is
the generation's wall time (encode, decode, classify, choose; with the refinement, plus the walk
back) divided by N, the metrics' own time not counted.

**Minimal-change refinement** (``blend_steps`` = A > 0; not in the paper; **off by default**,
``blend_steps = 0``: the paper's counterfactual is the generator's output): the generator
is trained to move ``x`` towards a real target-class image (its ℓ1 term pulls ``x*`` onto
``x_nn``), so its raw output is about as far from ``x`` as a real neighbour is. Each
candidate is therefore walked back along the straight line to the original,
``x*(α) = x + α·(x*_i − x)`` for ``α ∈ {1/A, 2/A, …, 1}``, and replaced by the point with the
smallest ``α`` the classifier assigns to ``y*`` (``α = 1``, the generator's output itself,
when none is valid). All ``N·K·A`` points are classified in batches, no loop per sample.
Proximity then shrinks by the factor ``α``; ``alpha`` and ``gan_proximity_l1`` (the
generator's own output) are stored so the refinement is visible, and ``disc_score`` /
``plausibility_l1`` measure what it costs in realism. With the refinement on, the raw
generator's own choice (the closest valid *unrefined* candidate, what ``blend_steps = 0`` gives)
is kept beside it: ``raw_counterfactual_inputs``, ``raw_chosen`` and ``raw_<metric>`` for every
CARLA metric, and ``raw_seconds_per_counterfactual``, so both are reported side by side
(:func:`methods_table_of`: ``tables/counterfactual_methods.csv``).

**Choice**: the chosen counterfactual is the valid candidate with the smallest
``proximity_l1``; when no candidate is valid, the one with the highest ``prob_target``
(ties: the lower candidate index, so ``δ = 0`` wins ties). :func:`choose_candidates`.

:func:`tracer_comparison` (``counterfactual_tracer.nc``, App. C Fig. 8): TRACER's pipeline
(:func:`~causalxai.tracer.pipeline.run_tracer`: interventions, causal nodes at ε, ACE) on the
originals and the chosen counterfactuals in one pass, the output node's attribution of both,
their difference and the features where they differ
(:func:`~causalxai.tracer.ace.threshold_mask` of the difference). Each attribution is signed with
respect to the class the model predicts for *that* input (ACE's convention): for a misclassified
original, + supports the wrong class; for a valid counterfactual, + supports the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from causalxai.checks import require_informative
from causalxai.counterfactual.gan import nearest_neighbours
from causalxai.counterfactual.metrics import METRICS, counterfactual_metrics, distance_metrics, methods_table
from causalxai.data.dataset import to_raw as _to_raw
from causalxai.io import describe
from causalxai.runtime import predict
from causalxai.tracer.ace import threshold_mask
from causalxai.tracer.pipeline import TracerSettings, run_tracer
from causalxai.tracer.settings import Settings, function, integer, number, optional, setting

__all__ = [
    "KINDS",
    "CounterfactualSettings",
    "candidate_metrics",
    "choose_candidates",
    "counterfactual_table",
    "counterfactuals",
    "methods_table_of",
    "minimal_blend",
    "select_samples",
    "tracer_comparison",
]

KINDS = ("misclassified", "correct")


@dataclass(frozen=True)
class CounterfactualSettings(Settings):
    """The counterfactuals step's settings (module docstring; ``tracer.counterfactuals``).

    Attributes:
        n_correct: correctly classified test samples explained next to the misclassified ones.
        n_misclassified: at most this many misclassified test samples, a seeded sample (None:
            all of them, the paper's App. C).
        n_candidates: K ≥ 1 latent candidates per sample (candidate 0 is ``δ = 0``).
        sigma: σ of ``δ ~ N(0, σ²)`` per latent entry (each ``z_x`` is standardised, so σ = 0.5
            is half a latent standard deviation).
        sparsity_tol: raw-space change that counts a pixel as changed.
        blend_steps: A of the minimal-change refinement (0: the generator's output as it is).
        ynn_k: neighbours of CARLA's yNN (:func:`~causalxai.counterfactual.metrics.ynn`).
        figure_samples: samples drawn in the figure.
        seed: the candidates' and the selection's seed.
        batch_size: inputs per forward pass.
        to_raw: normalised → raw [0, 1], where the metrics are computed.
    """

    SECTION: ClassVar[str] = "tracer.counterfactuals"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {"seed": "seed"}

    n_correct: int = setting(10, integer(0))
    n_misclassified: int | None = setting(None, optional(integer(0)))
    n_candidates: int = setting(8, integer(1))
    sigma: float = setting(0.5, number(0.0))
    sparsity_tol: float = setting(0.05, number(0.0))
    blend_steps: int = setting(0, integer(0))
    figure_samples: int = setting(4, integer(0))
    ynn_k: int = setting(5, integer(1))
    seed: int = setting(0, integer(0))
    batch_size: int = setting(256, integer(1))
    to_raw: Callable[[torch.Tensor], torch.Tensor] = setting(_to_raw, function())  # noqa: RUF009 (setting is the field specifier)



def select_samples(
    classifier: nn.Module,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n_correct: int,
    seed: int,
    *,
    n_classes: int | None = None,
    batch_size: int = 512,
    n_misclassified: int | None = None,
) -> dict[str, np.ndarray]:
    """The samples to explain (module docstring).

    Args:
        classifier: the target model.
        x_test, y_test: the test split.
        n_correct: correctly classified samples to draw (capped at how many there are).
        seed: the draws' seed.
        n_classes: the number of classes (default: the classifier's outputs).
        batch_size: inputs per forward pass.
        n_misclassified: at most this many misclassified samples, drawn with the same seed
            after the correct ones (so those do not depend on it); None: all of them.

    Returns:
        A dict of aligned arrays: ``index`` (into ``x_test``; the misclassified first, in test
        order, then the correct ones, in test order), ``label``, ``pred``, ``target``
        (misclassified: the label; correct: a uniformly drawn other class) and ``kind``.
    """
    if n_correct < 0:
        raise ValueError(f"select_samples: n_correct must be >= 0, got {n_correct}")
    if n_misclassified is not None and n_misclassified < 0:
        raise ValueError(f"select_samples: n_misclassified must be >= 0 or None (all), got {n_misclassified}")
    classifier = classifier.eval()
    logits = predict(classifier, torch.as_tensor(x_test, dtype=torch.float32), batch_size=batch_size)
    k = int(n_classes or logits.shape[1])
    pred = logits.argmax(1).cpu().numpy().astype(np.int64)
    y = np.asarray(torch.as_tensor(y_test).cpu()).astype(np.int64).reshape(-1)
    wrong = np.flatnonzero(pred != y)
    right = np.flatnonzero(pred == y)
    rng = np.random.default_rng(int(seed))
    chosen = np.sort(rng.choice(right, size=min(int(n_correct), right.size), replace=False)) if right.size else right
    other = (y[chosen] + rng.integers(1, k, size=chosen.size)) % k
    if n_misclassified is not None and n_misclassified < wrong.size:
        wrong = np.sort(rng.choice(wrong, size=int(n_misclassified), replace=False))
    index = np.concatenate([wrong, chosen]).astype(np.int64)
    return {
        "index": index,
        "label": y[index],
        "pred": pred[index],
        "target": np.concatenate([y[wrong], other]).astype(np.int64),
        "kind": np.array([KINDS[0]] * wrong.size + [KINDS[1]] * chosen.size, dtype=str),
    }


def candidate_metrics(
    original: torch.Tensor,
    candidates: torch.Tensor,
    *,
    sparsity_tol: float = 0.05,
    to_raw: Callable[[torch.Tensor], torch.Tensor] = _to_raw,
) -> dict[str, torch.Tensor]:
    """Proximity and sparsity of ``candidates (N, K, C, H, W)`` to ``original (N, C, H, W)``
    in raw space: ``proximity_l1``, ``proximity_l2`` (norms over the image) and ``sparsity``
    (share of pixels with ``|Δ| > sparsity_tol``), each ``(N, K)``."""
    n, k = candidates.shape[:2]
    repeated = original.unsqueeze(1).expand_as(candidates).reshape(n * k, *original.shape[1:])
    met = distance_metrics(repeated, candidates.reshape(n * k, *candidates.shape[2:]), sparsity_tol=sparsity_tol,
                           to_raw=to_raw)
    return {name: met[name].reshape(n, k) for name in ("proximity_l1", "proximity_l2", "sparsity")}


def minimal_blend(
    classifier: nn.Module,
    original: torch.Tensor,
    candidates: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    *,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The minimal-change refinement (module docstring) of ``candidates (N, K, C, H, W)``
    towards ``original (N, C, H, W)`` for ``target (N,)``.

    Returns ``(refined (N, K, C, H, W), alpha (N, K), logits (N, K, classes))``: per candidate
    the point ``x + α·(x* − x)`` with the smallest valid ``α`` of the grid ``1/steps … 1``
    (``α = 1`` when none is valid) and the classifier's logits there.
    """
    if steps < 1:
        raise ValueError(f"minimal_blend: steps must be >= 1, got {steps}")
    n, k = candidates.shape[:2]
    dev = candidates.device
    alphas = torch.arange(1, steps + 1, device=dev, dtype=candidates.dtype) / steps
    direction = candidates - original[:, None]  # (N, K, C, H, W)
    img_shape = candidates.shape[2:]
    refined = torch.empty_like(candidates)
    alpha = torch.empty((n, k), dtype=candidates.dtype, device=dev)
    logits_out: torch.Tensor | None = None
    per = max(1, 8192 // (k * steps))  # samples per chunk: at most ~8192 points in memory at once
    tgt = target.to(dev).long()
    for s0 in range(0, n, per):
        sl = slice(s0, s0 + per)
        pts = original[sl, None, None] + alphas[None, None, :, None, None, None] * direction[sl, :, None]
        pts[:, :, -1] = candidates[sl]  # α = 1: the generator's output itself, exactly
        m = pts.shape[0]
        logits = predict(classifier, pts.reshape(m * k * steps, *img_shape), batch_size=batch_size).to(dev)
        logits = logits.reshape(m, k, steps, -1)
        ok = logits.argmax(-1) == tgt[sl, None, None]
        first = torch.where(ok.any(2), ok.float().argmax(2), steps - 1)  # argmax: the first maximum
        rows = torch.arange(m, device=dev)[:, None]
        cols = torch.arange(k, device=dev)[None, :]
        refined[sl] = pts[rows, cols, first]
        alpha[sl] = alphas[first]
        if logits_out is None:
            logits_out = torch.empty((n, k, logits.shape[-1]), dtype=logits.dtype, device=dev)
        logits_out[sl] = logits[rows, cols, first]
    assert logits_out is not None
    return refined, alpha, logits_out


def choose_candidates(valid: Any, proximity: Any, prob_target: Any) -> np.ndarray:
    """Index ``(N,)`` of the chosen candidate per row: the valid one with the smallest
    proximity, else the one with the highest target probability; ties: the lower index."""
    v = np.asarray(valid, dtype=bool)
    prox = np.where(v, np.asarray(proximity, dtype=np.float64), np.inf)
    best_valid = np.argmin(prox, axis=1)
    best_prob = np.argmax(np.asarray(prob_target, dtype=np.float64), axis=1)
    return np.where(v.any(1), best_valid, best_prob).astype(np.int64)


def counterfactuals(
    generator: nn.Module,
    classifier: nn.Module,
    x: torch.Tensor,
    samples: Mapping[str, Any],
    settings: CounterfactualSettings | None = None,
    *,
    discriminator: nn.Module | None = None,
    pool: tuple[torch.Tensor, Any] | None = None,
    device: str | torch.device = "cpu",
) -> xr.Dataset:
    """Counterfactuals of ``x (N, C, H, W)`` (normalised): ``counterfactuals.nc``.

    Args:
        generator: :class:`~causalxai.counterfactual.gan.CounterfactualGenerator`.
        classifier: the explained model (logits).
        x: the samples' normalised images.
        samples: :func:`select_samples`' dict (or any mapping) with ``target (N,)`` and
            optionally ``label`` (the true labels, default −1), ``index`` (the sample ids,
            default 0 … N−1) and ``kind`` of each sample, stored as coordinates.
        settings: :class:`CounterfactualSettings` (``n_candidates``, ``sigma``,
            ``sparsity_tol``, ``blend_steps``, ``seed``, ``batch_size``, ``to_raw``).
        discriminator: for ``disc_score`` (NaN without).
        pool: ``(images, labels)`` of real reference images for ``plausibility_l1`` and
            ``nn_distance`` (NaN without).
        device: where to compute.

    Returns:
        Dataset with coords ``sample``, ``candidate``, ``channel``, ``y``, ``x``, ``kind
        (sample)``; ``original``/``counterfactual (sample, y, x)`` (first channel,
        normalised), ``original_inputs``/``counterfactual_inputs (sample, channel, y, x)``,
        ``difference (sample, y, x)`` (counterfactual − original, normalised units),
        ``candidates (sample, candidate, y, x)``; ``label``, ``pred``, ``target``,
        ``chosen``, ``pred_counterfactual``, ``valid``, ``prob_target``, ``proximity_l1``,
        ``proximity_l2``, ``sparsity``, ``plausibility_l1``, ``disc_score``,
        ``nn_distance`` per sample and ``candidate_<metric> (sample, candidate)``; attrs
        with the aggregates (``validity_rate`` overall and per kind, means of the metrics).

    Raises:
        causalxai.checks.DegenerateResultError: ``proximity_l1`` is all NaN (the generator
            outputs NaN) or one constant over the samples (in practice 0: every
            counterfactual is its original, nothing was generated).
    """
    st = settings or CounterfactualSettings()
    n_candidates, sigma, sparsity_tol, blend_steps = st.n_candidates, st.sigma, st.sparsity_tol, st.blend_steps
    seed, batch_size, to_raw = st.seed, st.batch_size, st.to_raw
    target, labels, sample_ids, kind = (samples.get(k) for k in ("target", "label", "index", "kind"))
    if target is None:
        raise ValueError("counterfactuals: samples has no 'target' (the class of each counterfactual)")
    dev = torch.device(device)
    xs = torch.as_tensor(x, dtype=torch.float32)
    if xs.dim() != 4 or len(xs) == 0:
        raise ValueError(f"counterfactuals: x must be (N, C, H, W) with N >= 1, got {tuple(xs.shape)}")
    n, c, h, w = xs.shape
    tgt = torch.as_tensor(np.asarray(target), dtype=torch.long).reshape(-1)
    if len(tgt) != n:
        raise ValueError(f"counterfactuals: {len(tgt)} targets for {n} samples")
    ids = list(range(n)) if sample_ids is None else list(np.asarray(sample_ids).tolist())
    lab = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(ids) != n or len(lab) != n:
        raise ValueError(f"counterfactuals: {len(ids)} ids and {len(lab)} labels for {n} samples")
    generator, classifier = generator.to(dev).eval(), classifier.to(dev).eval()
    k = int(n_candidates)
    rng = torch.Generator().manual_seed(int(seed))
    latent_dim = int(getattr(generator, "latent_dim"))
    delta = torch.randn((n, k, latent_dim), generator=rng) * float(sigma)
    delta[:, 0] = 0.0

    with torch.no_grad():
        xd = xs.to(dev)
        t_start = time.perf_counter()
        z = torch.cat([generator.encode(xd[i : i + batch_size]) for i in range(0, n, batch_size)])
        zz = (z[:, None] + delta.to(dev)).reshape(n * k, latent_dim)
        tt = tgt.to(dev).repeat_interleave(k)
        cand = torch.cat([generator.decode(zz[i : i + batch_size], tt[i : i + batch_size])
                          for i in range(0, n * k, batch_size)])
        gan_prox = candidate_metrics(xd, cand.reshape(n, k, c, h, w), sparsity_tol=sparsity_tol,
                                     to_raw=to_raw)["proximity_l1"]
        raw_logits = predict(classifier, cand, batch_size=batch_size).to(dev)
        raw_prob_t = torch.softmax(raw_logits.double(), 1).gather(1, tt[:, None]).reshape(n, k)
        raw_chosen = choose_candidates((raw_logits.argmax(1) == tt).reshape(n, k).cpu().numpy(),
                                       gan_prox.cpu().numpy(), raw_prob_t.cpu().numpy())
        raw_cf = cand.reshape(n, k, c, h, w)[torch.arange(n, device=dev), torch.as_tensor(raw_chosen, device=dev)]
        raw_seconds = time.perf_counter() - t_start
        if blend_steps > 0:
            t_refine = time.perf_counter()
            refined, alpha, logits = minimal_blend(classifier, xd, cand.reshape(n, k, c, h, w), tgt.to(dev),
                                                   int(blend_steps), batch_size=batch_size)
            cand, logits = refined.reshape(n * k, c, h, w), logits.reshape(n * k, -1)
            refine_seconds = time.perf_counter() - t_refine
        else:
            alpha = torch.ones((n, k), device=dev)
            logits = raw_logits
            refine_seconds = 0.0
        prob = torch.softmax(logits.double(), 1)
        prob_t = prob.gather(1, tt[:, None]).squeeze(1).reshape(n, k)
        pred_c = logits.argmax(1).reshape(n, k)
        pred_o = predict(classifier, xd, batch_size=batch_size, output="label")
        disc = (torch.sigmoid(torch.cat([discriminator.to(dev).eval()(cand[i : i + batch_size])
                                         for i in range(0, n * k, batch_size)])).reshape(n, k)
                if discriminator is not None else torch.full((n, k), float("nan")))
        cand = cand.reshape(n, k, c, h, w)
        met = candidate_metrics(xd, cand, sparsity_tol=sparsity_tol, to_raw=to_raw)
        plaus = torch.full((n, k), float("nan"))
        nn_dist = torch.full((n,), float("nan"))
        if pool is not None:
            ref = to_raw(torch.as_tensor(pool[0], dtype=torch.float32).to(dev))
            ref_y = torch.as_tensor(np.asarray(pool[1])).long().to(dev)
            raw_x = to_raw(xd)
            same = torch.cdist(raw_x.flatten(1), ref.flatten(1), p=1.0) == 0  # the original itself
            n_cls = int(max(int(ref_y.max()) + 1, int(tgt.max()) + 1))
            idx_o, d_o = nearest_neighbours(raw_x, ref, ref_y, n_cls, exclude=same)
            nn_dist = d_o.gather(1, tgt.to(dev)[:, None]).squeeze(1)
            _, d_c = nearest_neighbours(to_raw(cand).reshape(n * k, c, h, w), ref, ref_y, n_cls,
                                        exclude=same.repeat_interleave(k, 0))
            plaus = d_c.gather(1, tt[:, None]).squeeze(1).reshape(n, k)

    valid = (pred_c == tgt.to(dev)[:, None]).cpu().numpy()
    prox = met["proximity_l1"].cpu().numpy().astype(np.float64)
    chosen = choose_candidates(valid, prox, prob_t.cpu().numpy())
    rows = np.arange(n)
    # the refinement's time: the generation up to the raw choice, then the walk back and the refined choice
    seconds = raw_seconds + refine_seconds
    cand_np = cand.cpu().numpy().astype(np.float32)
    cf = cand_np[rows, chosen]
    # CARLA's metrics of the chosen counterfactual (and of the raw generator's choice when refined)
    pool_pred = None if pool is None else predict(classifier, torch.as_tensor(pool[0], dtype=torch.float32),
                                                  batch_size=batch_size, output="label")
    metric_kw = dict(pool=pool, pool_pred=pool_pred, k=st.ynn_k, sparsity_tol=sparsity_tol, to_raw=to_raw,
                     batch_size=batch_size)
    carla = counterfactual_metrics(classifier, xd, torch.as_tensor(cf, device=dev), tgt, **metric_kw)
    raw_met = counterfactual_metrics(classifier, xd, raw_cf, tgt, **metric_kw) if blend_steps > 0 else None
    orig = xs.numpy().astype(np.float32)

    cmet = {
        "valid": valid,
        "pred": pred_c.cpu().numpy().astype(np.int64),
        "prob_target": prob_t.cpu().numpy(),
        "proximity_l1": prox,
        "proximity_l2": met["proximity_l2"].cpu().numpy().astype(np.float64),
        "sparsity": met["sparsity"].cpu().numpy().astype(np.float64),
        "plausibility_l1": plaus.cpu().numpy().astype(np.float64),
        "disc_score": disc.cpu().numpy().astype(np.float64),
        "alpha": alpha.cpu().numpy().astype(np.float64),
        "gan_proximity_l1": gan_prox.cpu().numpy().astype(np.float64),
    }
    data: dict[str, Any] = {
        "original": (("sample", "y", "x"), orig[:, 0]),
        "counterfactual": (("sample", "y", "x"), cf[:, 0]),
        "difference": (("sample", "y", "x"), cf[:, 0] - orig[:, 0]),
        "original_inputs": (("sample", "channel", "y", "x"), orig),
        "counterfactual_inputs": (("sample", "channel", "y", "x"), cf),
        "candidates": (("sample", "candidate", "y", "x"), cand_np[:, :, 0]),
        "label": (("sample",), lab),
        "pred": (("sample",), pred_o.cpu().numpy().astype(np.int64)),
        "target": (("sample",), tgt.numpy().astype(np.int64)),
        "chosen": (("sample",), chosen),
        "pred_counterfactual": (("sample",), cmet["pred"][rows, chosen]),
        "nn_distance": (("sample",), nn_dist.cpu().numpy().astype(np.float64)),
        "delta": (("sample", "candidate", "latent"), delta.numpy().astype(np.float32)),
    }
    for name, values in cmet.items():
        if name != "pred":
            data[name] = (("sample",), values[rows, chosen])
        data[f"candidate_{name}"] = (("sample", "candidate"), values)
    for name in ("l0", "linf", "ynn", "redundancy"):
        data[name] = (("sample",), carla[name])
    if raw_met is not None:
        data["raw_counterfactual_inputs"] = (("sample", "channel", "y", "x"),
                                             raw_cf.cpu().numpy().astype(np.float32))
        data["raw_chosen"] = (("sample",), raw_chosen)
        data["raw_pred_counterfactual"] = (("sample",), raw_met.pop("pred"))
        for name, values in raw_met.items():
            data[f"raw_{name}"] = (("sample",), values)
    coords: dict[str, Any] = {"sample": ids, "candidate": np.arange(k), "channel": np.arange(c), "y": np.arange(h),
                              "x": np.arange(w), "latent": np.arange(latent_dim)}
    if kind is not None:
        kind_arr = np.asarray(kind).astype(str)
        if kind_arr.shape != (n,):
            raise ValueError(f"counterfactuals: {kind_arr.size} kinds for {n} samples")
        coords["kind"] = ("sample", kind_arr)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(_aggregates(ds))
    ds.attrs.update(
        description="counterfactuals of paper 004 §3.5: K latent candidates D([E(x) + delta; o(y*)]) per sample, "
        "the closest valid one chosen (else the one with the highest target probability); metrics in raw [0, 1] "
        "pixel space",
        n_candidates=k, sigma=float(sigma), sparsity_tol=float(sparsity_tol), blend_steps=int(blend_steps),
        seed=int(seed), ynn_k=int(st.ynn_k), seconds_per_counterfactual=seconds / n,
        raw_seconds_per_counterfactual=raw_seconds / n,
        choice_rule="closest valid candidate by proximity_l1, else the highest target probability; ties: lower index",
        metric_space="raw (x + 1) / 2 in [0, 1], norms summed over the image",
        pool="none" if pool is None else f"{len(pool[0])} reference images, those identical to the original skipped",
    )
    desc = {
        **METRICS,
        **{f"raw_{m}": f"{d} (the generator's own output, before the refinement)" for m, d in METRICS.items()},
        "raw_counterfactual_inputs": "the generator's chosen output before the refinement (blend_steps > 0)",
        "raw_chosen": "the candidate chosen among the unrefined outputs (blend_steps > 0)",
        "raw_pred_counterfactual": "the classifier's class for the unrefined chosen output (blend_steps > 0)",
        "valid": "the classifier predicts the target for the counterfactual",
        "proximity_l1": "l1 norm of counterfactual - original (raw [0, 1] units, summed over the pixels)",
        "proximity_l2": "l2 norm of counterfactual - original (raw units)",
        "sparsity": "share of pixels changed by more than sparsity_tol (raw units)",
        "plausibility_l1": "l1 distance (raw) from the counterfactual to the nearest target-class image of the pool",
        "disc_score": "discriminator's probability that the counterfactual is real",
        "nn_distance": "l1 distance (raw) from the original to the nearest target-class image of the pool: the "
                       "proximity of the nearest-neighbour counterfactual",
        "difference": "counterfactual - original (normalised units, [-2, 2])",
        "alpha": "share of the way from the original to the generator's output (1: the output itself; "
                 "minimal-change refinement, blend_steps)",
        "gan_proximity_l1": "proximity_l1 of the generator's own output, before the refinement",
    }
    describe(ds, {name: text for name, text in desc.items() if name in ds.variables})
    require_informative(
        ds["proximity_l1"], "proximity_l1 (the counterfactuals' distance to their originals)", "counterfactuals",
        causes="a generator whose output is NaN or equals its input (a diverged or untrained GAN: "
               "tracer.counterfactual_gan.epochs, tracer.counterfactual_gan.lr)",
        fix="re-train the GAN (snakemake --forcerun counterfactual_gan) with more epochs or another lr",
    )
    return ds


def _aggregates(ds: xr.Dataset) -> dict[str, float]:
    out: dict[str, float] = {"n_samples": int(ds.sizes["sample"])}

    def mean(v: np.ndarray) -> float:
        v = np.asarray(v, dtype=np.float64)
        return float(np.nanmean(v)) if v.size and np.isfinite(v).any() else float("nan")

    out["validity_rate"] = mean(ds["valid"].values)
    for name in ("proximity_l1", "proximity_l2", "sparsity", "plausibility_l1", "disc_score", "nn_distance", "alpha",
                 "gan_proximity_l1", "l0", "linf", "ynn", "redundancy"):
        out[f"mean_{name}"] = mean(ds[name].values)
    if "raw_valid" in ds:
        out["raw_validity_rate"] = mean(ds["raw_valid"].values)
        for name in METRICS:
            if name != "valid":
                out[f"mean_raw_{name}"] = mean(ds[f"raw_{name}"].values)
    if "kind" in ds.coords:
        kinds = np.asarray(ds["kind"].values).astype(str)
        for kd in KINDS:
            sel = kinds == kd
            out[f"n_{kd}"] = int(sel.sum())
            out[f"validity_rate_{kd}"] = mean(ds["valid"].values[sel])
            out[f"mean_proximity_l1_{kd}"] = mean(ds["proximity_l1"].values[sel])
            out[f"mean_nn_distance_{kd}"] = mean(ds["nn_distance"].values[sel])
    return out


def counterfactual_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-sample metrics of ``counterfactuals.nc`` as a table (index ``sample``); with the
    refinement on, the raw generator output's metrics follow as ``raw_<metric>`` columns."""
    cols = ["label", "pred", "target", "chosen", "pred_counterfactual", "valid", "prob_target", "proximity_l1",
            "proximity_l2", "linf", "l0", "sparsity", "plausibility_l1", "ynn", "redundancy", "disc_score",
            "nn_distance", "alpha", "gan_proximity_l1"]
    if "raw_valid" in ds:
        cols += ["raw_chosen", "raw_pred_counterfactual", *(f"raw_{m}" for m in METRICS)]
    frame = ds[cols].to_dataframe()[cols]
    if "kind" in ds.coords:
        frame.insert(0, "kind", np.asarray(ds["kind"].values).astype(str))
    return frame


def methods_table_of(cf: xr.Dataset, wachter: xr.Dataset | None = None) -> pd.DataFrame:
    """``tables/counterfactual_methods.csv``: CARLA's metrics per method, one row each
    (:func:`~causalxai.counterfactual.metrics.methods_table`): ``gan`` (the generator's output,
    the paper's counterfactual), ``gan_refined`` (with the minimal-change refinement, when
    ``blend_steps > 0``) and ``wachter`` (the baseline, when given; it must hold the same
    samples and targets).

    Raises:
        ValueError: when ``wachter``'s samples or targets differ from ``cf``'s.
    """
    refined = "raw_valid" in cf
    methods: dict[str, tuple[xr.Dataset, str]] = {"gan": (cf, "raw_" if refined else "")}
    if refined:
        methods["gan_refined"] = (cf, "")
    if wachter is not None:
        same = (np.array_equal(np.asarray(cf["sample"].values), np.asarray(wachter["sample"].values))
                and np.array_equal(cf["target"].values, wachter["target"].values))
        if not same:
            raise ValueError("methods_table_of: the Wachter counterfactuals are not for the GAN's samples and targets "
                             "(re-run wachter_counterfactuals with the same tracer.counterfactuals settings)")
        methods["wachter"] = (wachter, "")
    return methods_table(methods)


def tracer_comparison(
    classifier: nn.Module,
    originals: torch.Tensor,
    counterfactuals: torch.Tensor,
    settings: TracerSettings,
    *,
    sample_ids: Sequence[Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """TRACER on the originals and their counterfactuals (App. C, Fig. 8): ``counterfactual_tracer.nc``.

    Both sets ``(S, C, H, W)`` (normalised) go through one
    :func:`~causalxai.tracer.pipeline.run_tracer` call (interventions, causal nodes at
    ``settings.eps``, ACE) with the TRACER rules' own settings.

    Args:
        classifier: the explained model.
        originals, counterfactuals: the two sets of normalised images.
        settings: TRACER's settings (``mask_threshold`` also marks where the two differ).
        sample_ids: the ``sample`` coordinate (default ``0 … S−1``).
        device: where to compute.
        progress: log the samples done at a steady rate.

    Returns:
        Dataset with coords ``version`` (``original``, ``counterfactual``), ``sample``,
        ``group``, ``layer``, ``y``, ``x``, ``class``: ``attribution (version, sample, y, x)``
        (the output node's), ``group_attribution (version, sample, group, y, x)`` (every
        node's, NaN beyond ``n_groups``), ``ace (version, sample, group)``, ``mask (version,
        sample, y, x)``, ``n_groups (version, sample)``, ``layer_group (version, sample,
        layer)``, ``pred``, ``prob (version, sample, class)``, ``image (version, sample, y,
        x)``, ``attribution_normalised`` (each map divided by its max ``|attribution|``),
        ``difference (sample, y, x)`` (counterfactual − original normalised attribution) and
        ``changed (sample, y, x)``: ``|difference| ≥ mask_threshold · max |difference|``.
    """
    xo = torch.as_tensor(originals, dtype=torch.float32)
    xc = torch.as_tensor(counterfactuals, dtype=torch.float32)
    if xo.shape != xc.shape or xo.dim() != 4 or len(xo) == 0:
        raise ValueError(f"tracer_comparison: originals {tuple(xo.shape)} and counterfactuals {tuple(xc.shape)} "
                         "must be the same (S, C, H, W) with S >= 1")
    s = len(xo)
    ids = list(range(s)) if sample_ids is None else list(np.asarray(sample_ids).tolist())
    if len(ids) != s:
        raise ValueError(f"tracer_comparison: {len(ids)} sample ids for {s} samples")
    result = run_tracer(classifier, torch.cat([xo, xc]), settings, device=device, progress=progress)
    inter, ace = result.interventions, result.ace
    mask_threshold = settings.mask_threshold
    n_groups = ace["n_groups"].values
    attr_all = ace["attribution"].values  # (2S, L, H, W)
    out_attr = attr_all[np.arange(2 * s), n_groups - 1]
    h, w = out_attr.shape[-2:]
    n_layers = attr_all.shape[1]

    def split(a: np.ndarray) -> np.ndarray:
        return a.reshape(2, s, *a.shape[1:])

    attr = split(out_attr)
    # each map on its own scale (max |attribution| = 1): a counterfactual the model is much
    # surer of has larger effects everywhere, which would otherwise swamp where they differ
    scale = np.abs(attr).max(axis=(-2, -1), keepdims=True)
    attr_n = np.divide(attr, scale, out=np.zeros_like(attr), where=scale > 0)
    diff = attr_n[1] - attr_n[0]
    ds = xr.Dataset(
        {
            "attribution": (("version", "sample", "y", "x"), attr),
            "attribution_normalised": (("version", "sample", "y", "x"), attr_n),
            "group_attribution": (("version", "sample", "group", "y", "x"), split(attr_all)),
            "ace": (("version", "sample", "group"), split(ace["ace"].values)),
            "mask": (("version", "sample", "y", "x"), split(ace["mask"].values)),
            "n_groups": (("version", "sample"), split(n_groups.astype(np.int64))),
            "layer_group": (("version", "sample", "layer"), split(ace["layer_group"].values)),
            "output_layer": (("version", "sample", "group"), split(ace["output_layer"].values.astype(str))),
            "pred": (("version", "sample"), split(inter["pred"].values)),
            "prob": (("version", "sample", "class"), split(inter["prob"].values)),
            "image": (("version", "sample", "y", "x"), split(inter["image"].values)),
            "difference": (("sample", "y", "x"), diff),
            "changed": (("sample", "y", "x"), threshold_mask(diff, mask_threshold)),
        },
        coords={
            "version": ["original", "counterfactual"],
            "sample": ids,
            "group": np.arange(n_layers),
            "layer": [str(v) for v in inter["layer"].values],
            "y": np.arange(h),
            "x": np.arange(w),
            "class": inter["class"].values,
        },
        attrs={
            "description": "TRACER on misclassified / selected samples and their counterfactuals (paper 004 App. C, "
            "Fig. 8): output-node attributions (signed w.r.t. each input's own predicted class), their difference "
            "and the features whose contribution differs",
            "eps": float(settings.eps),
            "mask_threshold": float(mask_threshold),
            "patch_size": inter.attrs["patch_size"],
            "stride": inter.attrs["stride"],
            "baseline": float(settings.baseline),
        },
    )
    ds["changed"].attrs["description"] = "|difference| >= mask_threshold x max |difference| (threshold_mask of ace.py)"
    ds["attribution_normalised"].attrs["description"] = "attribution / max |attribution| of its own map (0 if all 0)"
    ds["difference"].attrs["description"] = ("attribution_normalised (counterfactual) - attribution_normalised "
                                             "(original): where the contributions differ, each map on its own scale")
    return ds
