"""The Wachter search (Wachter, Mittelstadt & Russell 2017), the gradient baseline beside the
counterfactual GAN of paper 004 §3.5: ``tracer/wachter_counterfactuals.nc``.

For a sample ``x`` and target ``y*``, the counterfactual is

    x' = argmin_x'  λ · CE(f(x'), y*) + d(x, x'),   d = ‖to_raw(x') − to_raw(x)‖₁

(Wachter et al. eq. 2 with the cross-entropy in place of the squared output distance, the
usual form for classifiers, and the ℓ1 distance; their MAD weighting is left out: the digits'
border pixels have a median absolute deviation of 0, which would weigh them infinitely), with
``λ`` raised until the counterfactual is valid:

* the search runs in raw space ``r = to_raw(x')`` ∈ [0, 1], starting at ``r = to_raw(x)``,
  with Adam (``lr``), clipped to [0, 1] after each step; the classifier sees ``from_raw(r)``;
* ``rounds`` rounds of ``steps`` steps; after each round, every sample not yet valid has its
  ``λ`` multiplied by ``lam_factor`` (from ``lam``): Wachter's outer loop "increase λ until
  the counterfactual is valid";
* before each step the classifier's prediction is checked; a sample is **frozen** at the first
  point it assigns to ``y*`` (its minimal-λ, earliest valid point: the closest the search
  finds), and keeps the last point when it never gets there.

All samples are optimised **at once** (one tensor ``(N, C, H, W)``, the loss summed over the
samples): the classifier is in eval mode and Adam acts element by element, so each sample's
path is the one it would have alone. The result is deterministic on the CPU. Metrics:
:mod:`causalxai.counterfactual.metrics`, the same as the GAN's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from causalxai.checks import require_informative
from causalxai.counterfactual.metrics import METRICS, counterfactual_metrics, method_summary
from causalxai.data.dataset import from_raw as _from_raw, to_raw as _to_raw
from causalxai.io import describe
from causalxai.tracer.settings import Settings, function, integer, number, setting

__all__ = ["WachterSettings", "wachter_counterfactuals", "wachter_search"]


@dataclass(frozen=True)
class WachterSettings(Settings):
    """The Wachter search's settings (module docstring; ``tracer.wachter``).

    Attributes:
        lam: the initial λ (weight of the cross-entropy against the ℓ1 distance, raw units).
        lam_factor: λ's factor after each round in which a sample stayed invalid.
        rounds: rounds of ``steps`` Adam steps.
        steps: Adam steps per round.
        lr: Adam's learning rate (raw units per step, roughly).
        to_raw, from_raw: normalised ↔ raw [0, 1].
    """

    SECTION: ClassVar[str] = "tracer.wachter"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {}

    lam: float = setting(1.0, number(0.0))
    lam_factor: float = setting(10.0, number(1.0))
    rounds: int = setting(4, integer(1))
    steps: int = setting(100, integer(1))
    lr: float = setting(0.01, number(0.0))
    to_raw: Callable[[torch.Tensor], torch.Tensor] = setting(_to_raw, function())  # noqa: RUF009 (setting is the field specifier)
    from_raw: Callable[[torch.Tensor], torch.Tensor] = setting(_from_raw, function())  # noqa: RUF009


def wachter_search(
    classifier: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    settings: WachterSettings | None = None,
) -> dict[str, torch.Tensor]:
    """Wachter counterfactuals of ``x (N, C, H, W)`` (normalised) for ``target (N,)``, all
    samples in one optimisation (module docstring).

    Args:
        classifier: the explained model (logits); its parameters get no gradient.
        x: the samples, normalised, on the classifier's device.
        target: ``(N,)`` the classes to reach.
        settings: :class:`WachterSettings`.

    Returns:
        ``counterfactual (N, C, H, W)`` (normalised), ``valid (N,)``, ``lam (N,)`` (the λ in
        force when the sample was frozen, or at the end), ``steps (N,)`` (Adam steps taken
        before the sample was frozen; the total when never valid).
    """
    st = settings or WachterSettings()
    classifier = classifier.eval()
    dev = x.device
    tgt = torch.as_tensor(target, device=dev).long().reshape(-1)
    n = len(x)
    raw0 = st.to_raw(x.detach()).to(torch.float32)
    r = raw0.clone().requires_grad_(True)
    opt = torch.optim.Adam([r], lr=float(st.lr))
    lam = torch.full((n,), float(st.lam), dtype=torch.float32, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    frozen = raw0.clone()
    steps_used = torch.zeros(n, dtype=torch.long, device=dev)
    req = [p.requires_grad for p in classifier.parameters()]
    for p in classifier.parameters():
        p.requires_grad_(False)
    try:
        for rnd in range(int(st.rounds)):
            if rnd > 0:
                lam = torch.where(done, lam, lam * float(st.lam_factor))
            for _ in range(int(st.steps)):
                logits = classifier(st.from_raw(r))
                newly = (logits.argmax(1) == tgt) & ~done
                if bool(newly.any()):
                    frozen[newly] = r.detach()[newly]
                    done |= newly
                if bool(done.all()):
                    break
                ce = F.cross_entropy(logits, tgt, reduction="none")
                dist = (r - raw0).abs().flatten(1).sum(1)
                loss = ((lam * ce + dist) * (~done).to(ce.dtype)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    r.clamp_(0.0, 1.0)
                    r[done] = frozen[done]
                steps_used += (~done).long()
            if bool(done.all()):
                break
        with torch.no_grad():
            final = torch.where(done[:, None, None, None], frozen, r.detach())
            valid = classifier(st.from_raw(final)).argmax(1) == tgt
    finally:
        for p, q in zip(classifier.parameters(), req):
            p.requires_grad_(q)
    return {"counterfactual": st.from_raw(final).detach(), "valid": valid, "lam": lam, "steps": steps_used}


def wachter_counterfactuals(
    classifier: nn.Module,
    x: torch.Tensor,
    samples: Mapping[str, Any],
    settings: WachterSettings | None = None,
    *,
    pool: tuple[torch.Tensor, Any] | None = None,
    ynn_k: int = 5,
    sparsity_tol: float = 0.05,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> xr.Dataset:
    """``wachter_counterfactuals.nc``: the Wachter baseline on the GAN's samples and targets.

    Args:
        classifier: the explained model (logits).
        x: ``(N, C, H, W)`` the samples' normalised images.
        samples: :func:`~causalxai.counterfactual.counterfactuals.select_samples`' dict (``target``;
            optionally ``label``, ``index``, ``kind``).
        settings: :class:`WachterSettings`.
        pool: ``(images, labels)`` for ``plausibility_l1`` and ``ynn`` (NaN without).
        ynn_k: yNN's neighbours; sparsity_tol: raw change that counts a pixel as changed.
        batch_size: inputs per forward pass of the metrics.
        device: where to compute.

    Returns:
        Dataset with coords ``sample``, ``channel``, ``y``, ``x`` (and ``kind``):
        ``original_inputs``/``counterfactual_inputs (sample, channel, y, x)``, ``label``,
        ``target``, ``lam``, ``steps`` and every metric of
        :data:`~causalxai.counterfactual.metrics.METRICS` per sample; attrs: the settings,
        ``seconds_per_counterfactual`` (the search's wall time / N) and the aggregates
        (``validity_rate``, ``mean_<metric>``).

    Raises:
        causalxai.checks.DegenerateResultError: ``proximity_l1`` is all NaN or one constant
            over the samples (in practice 0: the search never moved, e.g. ``lam`` 0 leaves
            only the distance term).
    """
    st = settings or WachterSettings()
    dev = torch.device(device)
    xs = torch.as_tensor(x, dtype=torch.float32).to(dev)
    if xs.dim() != 4 or len(xs) == 0:
        raise ValueError(f"wachter_counterfactuals: x must be (N, C, H, W) with N >= 1, got {tuple(xs.shape)}")
    n = len(xs)
    tgt = torch.as_tensor(np.asarray(samples["target"]), dtype=torch.long).reshape(-1).to(dev)
    if len(tgt) != n:
        raise ValueError(f"wachter_counterfactuals: {len(tgt)} targets for {n} samples")
    classifier = classifier.to(dev).eval()
    t0 = time.perf_counter()
    found = wachter_search(classifier, xs, tgt, st)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    cf = found["counterfactual"]
    met = counterfactual_metrics(classifier, xs, cf, tgt, pool=pool, k=ynn_k, sparsity_tol=sparsity_tol,
                                 to_raw=st.to_raw, batch_size=batch_size)
    ids: Sequence[Any] = list(range(n)) if samples.get("index") is None else np.asarray(samples["index"]).tolist()
    lab = samples.get("label")
    data: dict[str, Any] = {
        "original_inputs": (("sample", "channel", "y", "x"), xs.cpu().numpy().astype(np.float32)),
        "counterfactual_inputs": (("sample", "channel", "y", "x"), cf.cpu().numpy().astype(np.float32)),
        "label": (("sample",), np.full(n, -1, np.int64) if lab is None else np.asarray(lab, dtype=np.int64)),
        "target": (("sample",), tgt.cpu().numpy().astype(np.int64)),
        "pred_counterfactual": (("sample",), met.pop("pred")),
        "lam": (("sample",), found["lam"].cpu().numpy().astype(np.float64)),
        "steps": (("sample",), found["steps"].cpu().numpy().astype(np.int64)),
        **{name: (("sample",), v) for name, v in met.items()},
    }
    c, h, w = xs.shape[1:]
    coords: dict[str, Any] = {"sample": ids, "channel": np.arange(c), "y": np.arange(h), "x": np.arange(w)}
    if samples.get("kind") is not None:
        coords["kind"] = ("sample", np.asarray(samples["kind"]).astype(str))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(
        description="Wachter et al. (2017) counterfactuals: argmin lam * CE(f(x'), y*) + ||x' - x||_1 (raw), lam "
        "raised until valid; the baseline beside the counterfactual GAN (paper 004 §3.5)",
        lam=float(st.lam), lam_factor=float(st.lam_factor), rounds=int(st.rounds), steps=int(st.steps),
        lr=float(st.lr), ynn_k=int(ynn_k), sparsity_tol=float(sparsity_tol), seconds_per_counterfactual=seconds / n,
        metric_space="raw (x + 1) / 2 in [0, 1], norms summed over the image",
        pool="none" if pool is None else f"{len(pool[0])} reference images",
    )
    summary = method_summary(ds)
    ds.attrs["validity_rate"] = summary["validity"]
    ds.attrs.update({f"mean_{k}": v for k, v in summary.items() if k in METRICS})
    describe(ds, {**METRICS, "lam": "the lambda in force when the sample became valid (at the end if never)",
                  "steps": "Adam steps the sample took before it became valid (all of them if never)",
                  "pred_counterfactual": "the classifier's class for the counterfactual"})
    require_informative(
        ds["proximity_l1"], "proximity_l1 (the counterfactuals' distance to their originals)",
        "wachter_counterfactuals",
        causes=f"a search that never moved or diverged (tracer.wachter.lam: {st.lam:g}, lam_factor: "
               f"{st.lam_factor:g}, lr: {st.lr:g}, steps: {st.steps}, rounds: {st.rounds})",
        fix="raise tracer.wachter.lam (above 0), steps or rounds, or change lr",
    )
    return ds
