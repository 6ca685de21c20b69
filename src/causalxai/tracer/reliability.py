"""Reliability of explanation masks (paper 004 §4.1, Fig. 3): TRACER, eight baselines and a control, two protocols.

Custom methods (a Captum class by name or a user function, :mod:`causalxai.attribution.custom`)
are scored like the baselines: their attributions on the model's logits, summed over channels,
become masks by the same rule.

Every method's attribution ``a (N, H, W)`` becomes a binary mask by one rule for all
methods, :func:`per_sample_mask`: ``M(x)_i = |a_i| ≥ threshold · max_j |a_j|`` per sample (no
feature when the map is all zero). The perturbation function of §4.1 picks, per sample,
exactly ``k = floor(p · |M(x)|)`` of the mask's features uniformly at random,
``P(M(x), p) = 1 − 1{i ∈ S}`` (:func:`perturbation_matrix`), and the reliability score is
the share of samples whose prediction changes,
``S = |X|⁻¹ Σ_x 1{f(x) ≠ f(x')}`` (:func:`reliability_score`); mean and std over trials
(paper: p = 0.5, 10 trials, all MNIST test samples).

Choices where the paper leaves room:

* **Perturbed value.** The paper writes ``x' = x ⊙ P``: perturbed features become 0. Like the
  interventions (§4.1: "setting pixel values to zero before normalization") we set them
  to a baseline ``b`` in the *raw* input space and normalise afterwards (``from_raw``);
  ``b = 0`` (default) is exactly ``x ⊙ P`` on raw pixels. A feature is a pixel: all its
  channels are set together.
* **Randomness.** One trial is one random draw for all samples; the draws come from a
  ``torch.Generator`` seeded with ``seed`` (CPU), so results are deterministic. Every
  method uses the same seed (common random numbers). ``k`` is ``floor(p · |M| + 1e-9)``,
  so float rounding (0.29 · 100 = 28.999…) does not lose a feature.
* **Spread.** ``std`` is the population standard deviation over trials (``ddof = 0``):
  defined for a single trial too; multiply by ``sqrt(T / (T − 1))`` for the sample std.
* **Targets.** The baselines explain the logit of ``targets`` (default: the model's own
  prediction on the clean input, the decision whose reliability is measured).
* **Baselines** (attributions summed over input channels to ``(N, H, W)``; the gradient
  family from :mod:`causalxai.attribution` over the model's forward, the others Captum):

  - ``gradient``: :class:`~causalxai.attribution.gradient.Gradient`, the signed input
    gradient (Captum's ``Saliency(abs=False)``).
  - ``smoothgrad``: :class:`~causalxai.attribution.smoothgrad.SmoothGrad`, 25 samples,
    σ = 0.15 · (max − min) of *each* input (PAIR saliency's default, as in the model-zoo
    study), all draws in one pass laid out as Captum's ``NoiseTunnel``. Constant inputs
    (σ = 0) get the plain gradient.
  - ``integrated_gradients``: :class:`~causalxai.attribution.integrated_gradients.IntegratedGradients`,
    25 steps of Captum's default Gauss-Legendre rule from a zero baseline in the model's
    (normalised) input space.
  - ``grad_cam``: :class:`~causalxai.attribution.grad_cam.GradCam` on the last convolutional
    block's *activation* (the activation module right after the last ``nn.Conv2d``, alexnet28:
    ``relu5``; :func:`grad_cam_layer`) or ``grad_cam_layer``, with the ReLU of the original
    Grad-CAM, upsampled bilinearly to H × W (Captum's ``LayerGradCam``). Hooked on the conv's
    pre-activation output instead, negative channel sums are cut by that final ReLU and most
    maps come out all zero (an empty mask that never changes a prediction).
  - ``lime`` / ``kernel_shap``: Captum ``Lime`` (default Lasso surrogate and exponential
    cosine kernel) / ``KernelShap`` over s × s superpixels (default 4 × 4: 49 features on
    28 × 28; edge blocks are smaller when s does not divide the side), ``n_samples``
    (default 200) perturbations evaluated ``perturbations_per_eval`` at a time, absent
    superpixels set to the raw-0 value in normalised space (``from_raw(0)``). Captum
    fits one surrogate per sample, so these loop over samples.
  - ``lrp``: Captum ``LRP`` with its default rules (ε-rule for Conv/Linear/pooling,
    pass-through for ReLU/Dropout/Tanh). Captum has no rule for shape-only modules
    (``nn.Flatten``, ``nn.Unflatten``, ``nn.Identity``, dropout variants other than
    ``nn.Dropout``); they get an ``EpsilonRule``, which for ``out = reshape(in)`` passes
    relevance through unchanged (``R_in = in · R_out / out``). Captum's ``IdentityRule``
    would be wrong there (it returns the output-shaped relevance). Any other module
    without a rule raises. Rules are set for the call only.

  Randomised baselines (SmoothGrad, LIME, KernelSHAP) run under a forked torch RNG seeded
  with ``seed``, so they are deterministic and leave the caller's RNG alone.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from causalxai.attribution.custom import BUILTINS, MethodSpec, custom_attribute, method_specs
from causalxai.attribution.grad_cam import GradCam, layer_forward
from causalxai.attribution.gradient import Gradient
from causalxai.attribution.integrated_gradients import IntegratedGradients
from causalxai.attribution.smoothgrad import SmoothGrad
from causalxai.checks import flag_degenerate, refuse
from causalxai.progress import Progress
from causalxai.runtime import eval_mode, model_device, predict, seeded
from causalxai.tracer.ace import threshold_mask
from causalxai.tracer.settings import Settings, function, integer, number, setting

log = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "BASELINE_METHODS",
    "CONTROL_METHODS",
    "PROTOCOLS",
    "ACTIVATIONS",
    "BaselineSettings",
    "ReliabilitySettings",
    "per_sample_mask",
    "equal_size_mask",
    "random_foreground_mask",
    "perturbation_matrix",
    "reliability_changes",
    "reliability_score",
    "bootstrap_scores",
    "percentile_interval",
    "bootstrap_interval",
    "grad_cam_layer",
    "reliability_table",
    "superpixel_mask",
    "baseline_attributions",
    "reliability_dataset",
]

#: controls sized by TRACER's masks (:func:`random_foreground_mask`)
CONTROL_METHODS = ("random_foreground",)
#: the attribution baselines (:func:`baseline_attributions`)
BASELINE_METHODS = tuple(m for m in BUILTINS["tracer.reliability.methods"] if m not in CONTROL_METHODS)
METHODS = ("tracer", *BASELINE_METHODS, *CONTROL_METHODS)
#: ``paper``: each method's threshold mask; ``equal_size``: cut to TRACER's mask size per sample
PROTOCOLS = ("paper", "equal_size")
#: activation modules Grad-CAM's ``auto`` layer may be (the one right after the last ``nn.Conv2d``)
ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus,
    nn.Hardswish, nn.Hardtanh, nn.Tanh, nn.Sigmoid,
)
_K_TOL = 1e-9


# ---------------------------------------------------------------------------------------
# masks and perturbations


def per_sample_mask(attribution: torch.Tensor, threshold: float) -> torch.Tensor:
    """Explanation mask ``(N, …)`` bool of a batch: ``|a| ≥ threshold · max|a|`` per sample.

    The maximum runs over all of a sample's features (every axis but the first). A sample
    whose attribution is all zero gets an empty mask (no feature is significant). The same
    rule serves every method. ``threshold`` lies in ``[0, 1]``; non-finite attributions raise.
    """
    a = torch.as_tensor(attribution)
    if a.dim() < 2:
        raise ValueError(
            f"per_sample_mask: attribution must be (N, ...) with a sample axis, got shape {tuple(a.shape)}"
        )
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(
            f"per_sample_mask: the mask threshold must lie in [0, 1] (tracer.ace.mask_threshold), got {threshold}"
        )
    if not a.is_floating_point():
        a = a.float()
    if not torch.isfinite(a).all():
        raise ValueError("per_sample_mask: the attribution holds NaN or inf values")
    # the one rule, shared with the ACE step's explanation mask
    return torch.as_tensor(threshold_mask(a, t, axis=tuple(range(1, a.dim()))))


def _sizes(sizes: Any, n: int, d: int) -> torch.Tensor:
    k = torch.as_tensor(sizes).long().reshape(-1)
    if k.numel() != n:
        raise ValueError(f"{k.numel()} mask sizes for {n} samples")
    if (k < 0).any() or (k > d).any():
        raise ValueError(f"mask sizes must lie in [0, {d}] (the features of a sample), got {k.min()}..{k.max()}")
    return k


def _lowest_k(keys: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``(N, d)`` bool: per row the ``k[n]`` features with the lowest key, ties to the lower index."""
    n, d = keys.shape
    order = torch.sort(keys, dim=1, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(d, device=keys.device).expand(n, d).contiguous())
    return ranks < k.to(keys.device)[:, None]


def equal_size_mask(attribution: torch.Tensor, sizes: Any) -> torch.Tensor:
    """Masks ``(N, …)`` bool of exactly ``sizes[n]`` features: sample ``n``'s top ``|a|``.

    The equal-size protocol (module docstring): every method's mask cut (or grown) to the
    TRACER mask's size of the sample. Ties in ``|a|`` go to the lower row-major feature index
    (a stable sort), so the mask is deterministic; ``sizes[n] = 0`` gives an empty mask.

    Args:
        attribution: ``(N, …)`` attributions (any sign; non-finite values raise).
        sizes: ``(N,)`` integers in ``[0, features per sample]``.

    Returns:
        bool, shaped like ``attribution``.
    """
    a = torch.as_tensor(attribution)
    if a.dim() < 2:
        raise ValueError(f"equal_size_mask: attribution must be (N, ...), got shape {tuple(a.shape)}")
    if not a.is_floating_point():
        a = a.double()
    if not torch.isfinite(a).all():
        raise ValueError("equal_size_mask: the attribution holds NaN or inf values")
    flat = a.reshape(a.shape[0], -1)
    k = _sizes(sizes, *flat.shape)
    return _lowest_k(-flat.abs(), k).reshape(a.shape)


def random_foreground_mask(
    x_raw: torch.Tensor, sizes: Any, baseline: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The random-foreground control: ``(N, H, W)`` bool, ``sizes[n]`` pixels of sample ``n``.

    Drawn uniformly without replacement among the sample's foreground pixels, those whose raw
    value differs from ``baseline`` in some channel (perturbing the others changes nothing);
    when the foreground has fewer than ``sizes[n]`` pixels, all of it and the rest drawn
    uniformly among the background. Vectorised: foreground pixels get a uniform key in
    ``[0, 1)``, background ones ``1 +`` a uniform key, and the ``sizes[n]`` lowest keys win.

    Args:
        x_raw: raw inputs ``(N, C, H, W)`` (or ``(N, H, W)``).
        sizes: ``(N,)`` pixels per sample (TRACER's mask sizes).
        baseline: the raw value perturbed pixels take.
        generator: the keys' ``torch.Generator`` (CPU; default: the global RNG).

    Returns:
        bool ``(N, H, W)`` on the CPU.
    """
    x = torch.as_tensor(x_raw)
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4:
        raise ValueError(f"random_foreground_mask: x_raw must be (N, C, H, W), got shape {tuple(x.shape)}")
    fg = (x.cpu() != torch.as_tensor(baseline, dtype=x.dtype)).any(dim=1).reshape(x.shape[0], -1)
    k = _sizes(sizes, *fg.shape)
    keys = torch.rand(fg.shape, generator=generator, dtype=torch.float64) + (~fg).double()
    return _lowest_k(keys, k).reshape(x.shape[0], *x.shape[-2:])


def _n_perturbed(count: torch.Tensor, p: float) -> torch.Tensor:
    return torch.floor(count.double() * p + _K_TOL).long()


def perturbation_matrix(mask: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The keep-matrix ``P(M(x), p) = 1 − 1{i ∈ S(M(x), p)}`` of §4.1, bool, shaped like ``mask``.

    ``mask`` is ``(N, d)`` (or ``(N, …)``, flattened per sample). For each sample exactly
    ``k = floor(p · |M(x)|)`` of its mask's features, drawn uniformly without replacement,
    are False (to be perturbed); every other feature (outside the mask included) is True.
    Vectorised: each feature gets a uniform random key (features outside the mask get 2,
    above every key), and a feature is perturbed when its rank within its row is below k.
    The keys come from ``generator`` (CPU; default: the global RNG).
    """
    m = torch.as_tensor(mask).bool()
    if m.dim() < 2:
        raise ValueError(f"perturbation_matrix: mask must be (N, d), got shape {tuple(m.shape)}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"perturbation_matrix: p must lie in [0, 1] (tracer.reliability.p), got {p}")
    flat = m.reshape(m.shape[0], -1)
    n, d = flat.shape
    if n == 0 or d == 0:
        return torch.ones_like(m)
    dev = generator.device if generator is not None else torch.device("cpu")
    keys = torch.rand((n, d), generator=generator, device=dev).to(flat.device)
    keys = torch.where(flat, keys, torch.full_like(keys, 2.0))
    order = keys.argsort(dim=1)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(d, device=flat.device).expand(n, d).contiguous())
    k = _n_perturbed(flat.sum(1), float(p))
    perturbed = (ranks < k[:, None]) & flat
    return (~perturbed).reshape(m.shape)


def _check_masks(x_raw: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    m = torch.as_tensor(masks).bool()
    if m.dim() < 2 or m.shape[0] != x_raw.shape[0]:
        raise ValueError(f"reliability: masks {tuple(m.shape)} must be (N, ...) for {x_raw.shape[0]} inputs")
    spatial = tuple(m.shape[1:])
    if x_raw.dim() < 1 + len(spatial) or tuple(x_raw.shape[x_raw.dim() - len(spatial) :]) != spatial:
        raise ValueError(
            f"reliability: inputs {tuple(x_raw.shape)} do not end in the masks' feature shape {spatial}"
        )
    return m, spatial


def reliability_changes(
    model: nn.Module,
    x_raw: torch.Tensor,
    masks: torch.Tensor,
    settings: ReliabilitySettings | None = None,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Changed predictions ``(trials, N)`` bool: ``f(x) ≠ f(x')`` per trial and sample (§4.1).

    Args:
        model: the classifier (run in eval mode, no grad; its mode is restored).
        x_raw: inputs ``(N, *lead, *S)`` in the raw space, before normalisation.
        masks: explanation masks ``(N, *S)`` bool (e.g. ``(N, H, W)`` for ``(N, C, H, W)``
            inputs: a masked pixel is perturbed in every channel).
        settings: :class:`ReliabilitySettings` (default: its defaults): ``p`` (share of each
            mask to perturb, paper 0.5), ``trials`` (independent random draws, paper 10; one
            draw covers all samples), ``seed`` (of the draws' ``torch.Generator``),
            ``from_raw`` (normalisation applied to a raw batch before the model; None: none),
            ``baseline`` (the raw value perturbed features take; 0: ``x ⊙ P``) and
            ``batch_size`` (inputs per forward pass).
        device: where the model runs (default: where its parameters are).

    Returns:
        bool ``(trials, N)``. ``f(x)`` is the argmax of the model's output on
        ``from_raw(x_raw)``; ``f(x')`` on ``from_raw(x')`` with ``x' = where(P, x_raw, baseline)``.
    """
    s = settings or ReliabilitySettings()
    x_raw = torch.as_tensor(x_raw)
    if not x_raw.is_floating_point():
        x_raw = x_raw.float()
    m, spatial = _check_masks(x_raw, masks)
    n = x_raw.shape[0]
    if n == 0:
        raise ValueError("reliability_score: no inputs")
    dev = model_device(model, device)
    n_lead = x_raw.dim() - 1 - len(spatial)
    b = torch.as_tensor(s.baseline, dtype=x_raw.dtype)
    gen = torch.Generator().manual_seed(s.seed)
    changed = torch.empty(s.trials, n, dtype=torch.bool)

    def labels(x: torch.Tensor) -> torch.Tensor:
        return predict(model, x, batch_size=s.batch_size, transform=s.from_raw, device=dev, output="label")

    with eval_mode(model):
        clean = labels(x_raw)
        for t in range(s.trials):
            keep = perturbation_matrix(m.cpu(), s.p, gen).reshape(n, *([1] * n_lead), *spatial)
            x_pert = torch.where(keep.to(x_raw.device), x_raw, b.to(x_raw.device))
            changed[t] = (labels(x_pert) != clean).cpu()
    return changed


def reliability_score(
    model: nn.Module,
    x_raw: torch.Tensor,
    masks: torch.Tensor,
    settings: ReliabilitySettings | None = None,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Reliability scores ``(trials,)`` float64: per trial the share of changed predictions,
    ``S = |X|⁻¹ Σ_x 1{f(x) ≠ f(x')}`` (§4.1); the mean over samples of
    :func:`reliability_changes` (same arguments)."""
    return reliability_changes(model, x_raw, masks, settings, device=device).double().mean(dim=1)


def bootstrap_scores(changes: Any, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap over samples of the reliability score: ``(…, n_boot)`` float64.

    Each sample's changes are first averaged over the trials (``c_n``); a resample draws ``N``
    sample indices uniformly with replacement (``numpy.random.default_rng(seed).integers(0, N,
    (n_boot, N))``, the same resamples for every leading row, i.e. every method and protocol, so
    differences between rows are paired) and scores ``mean(c[idx])``.

    Args:
        changes: ``(…, trials, N)`` bool or float (:func:`reliability_changes` of each method).
        n_boot: resamples (≥ 1).
        seed: the resamples' seed.

    Returns:
        the resampled scores, shaped like ``changes`` with its last two axes replaced by ``n_boot``.
    """
    c = np.asarray(changes, dtype=np.float64)
    if c.ndim < 2 or c.shape[-1] == 0:
        raise ValueError(f"bootstrap: changes must be (..., trials, N) with N >= 1, got {c.shape}")
    if int(n_boot) < 1:
        raise ValueError(f"bootstrap: need n_boot >= 1, got {n_boot}")
    per_sample = c.mean(axis=-2)  # (..., N)
    lead, n = per_sample.shape[:-1], per_sample.shape[-1]
    b = int(n_boot)
    idx = np.random.default_rng(int(seed)).integers(0, n, size=(b, n))
    counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
    boot = per_sample.reshape(-1, n) @ counts.T.astype(np.float64) / n  # (rows, B)
    return boot.reshape(*lead, b)


def percentile_interval(boot: Any, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``(1 − level)/2`` and ``(1 + level)/2`` quantiles (NumPy's linear rule) over the last
    axis of bootstrap scores: ``(low, high)``, each shaped like ``boot`` without that axis."""
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"bootstrap: need 0 < level < 1, got {level}")
    q = np.quantile(np.asarray(boot, dtype=np.float64), [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=-1)
    return q[0], q[1]


def bootstrap_interval(changes: Any, n_boot: int, level: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over samples of the reliability score, ``(low, high)`` each ``(…)``:
    :func:`percentile_interval` of :func:`bootstrap_scores`.

    Args:
        changes: ``(…, trials, N)`` bool or float (:func:`reliability_changes` of each method).
        n_boot: resamples (≥ 1).
        level: the interval's coverage in ``(0, 1)`` (0.95: 2.5 % and 97.5 % quantiles).
        seed: the resamples' seed.

    Returns:
        float64 ``low`` and ``high``, shaped like ``changes`` without its last two axes.
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"bootstrap_interval: need 0 < level < 1, got {level}")
    return percentile_interval(bootstrap_scores(changes, n_boot, seed), level)


# ---------------------------------------------------------------------------------------
# baseline attributions (Captum)


@dataclass(frozen=True)
class BaselineSettings:
    """Settings of the Captum baselines (see the module docstring)."""

    smoothgrad_samples: int = 25
    smoothgrad_noise: float = 0.15
    ig_steps: int = 25
    ig_method: str = "gausslegendre"
    grad_cam_layer: str | None = None  # None / "auto": the activation after the last nn.Conv2d (grad_cam_layer)
    superpixel: int = 4
    n_samples: int = 200  # LIME / KernelSHAP perturbations per sample
    perturbations_per_eval: int = 200  # LIME / KernelSHAP / Occlusion inputs per forward
    batch_size: int = 64  # samples per call for the gradient-based methods and Occlusion
    occlusion_patch: tuple[int, int] = (3, 3)  # TRACER's patch (tracer.interventions.patch)
    occlusion_stride: tuple[int, int] = (1, 1)  # TRACER's stride (tracer.interventions.stride)

    @classmethod
    def from_config(cls, reliability_cfg: Mapping[str, Any]) -> BaselineSettings:
        """From ``tracer.reliability`` (``lime_samples``, ``superpixel``, ``grad_cam_layer``) and
        TRACER's ``patch``/``stride`` (Occlusion's windows); others keep their defaults."""
        kw: dict[str, Any] = {}
        if "lime_samples" in reliability_cfg:
            kw["n_samples"] = int(reliability_cfg["lime_samples"])
        if "superpixel" in reliability_cfg:
            kw["superpixel"] = int(reliability_cfg["superpixel"])
        if reliability_cfg.get("grad_cam_layer") not in (None, "auto"):
            kw["grad_cam_layer"] = str(reliability_cfg["grad_cam_layer"])
        for key in ("patch", "stride"):
            if key in reliability_cfg:
                v = reliability_cfg[key]
                kw[f"occlusion_{key}"] = (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(i) for i in v)
        return cls(**kw)


def _method_specs(value: Any, custom: Mapping[str, MethodSpec]) -> list[MethodSpec]:
    """The entries of ``methods`` parsed; a label of ``custom`` stands for its method."""
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not len(value):
        raise ValueError(f"has unknown methods none given; choose among {list(METHODS)} or custom methods")
    entries = [custom[e].as_params() | {"label": e} if isinstance(e, str) and e in custom else e for e in value]
    return method_specs(entries, "tracer.reliability.methods", METHODS)


def _methods(value: Any) -> tuple[str, ...]:
    """Built-in methods in :data:`METHODS`' order, then the custom ones in the config's."""
    labels = [s.label for s in value] if value and isinstance(value[0], MethodSpec) else list(value)
    return tuple(m for m in METHODS if m in labels) + tuple(m for m in labels if m not in METHODS)


def _coverage(value: Any) -> float:
    v = number(0.0, 1.0)(value)
    if not 0.0 < v < 1.0:
        raise ValueError("must lie strictly between 0 and 1 (the bootstrap interval's coverage)")
    return v


@dataclass(frozen=True)
class ReliabilitySettings(Settings):
    """The reliability comparison's settings (§4.1; module docstring).

    Attributes:
        methods: any of :data:`METHODS` (kept in :data:`METHODS`' order).
        p: share of each mask to perturb (paper 0.5).
        trials: independent random draws (paper 10).
        threshold: the masks' threshold (:func:`per_sample_mask`, ``tracer.ace.mask_threshold``).
        seed: seeds the draws and the randomised baselines (the same for every method), the
            bootstrap (``seed``) and the random-foreground control (``seed + 1``).
        baseline: the raw value perturbed features take.
        batch_size: inputs per forward pass.
        bootstrap: resamples of the percentile bootstrap over samples.
        ci: the bootstrap interval's coverage (0.95).
        from_raw: normalisation of a raw batch before the model (None: none).
        baselines: the Captum baselines' :class:`BaselineSettings`.
    """

    SECTION: ClassVar[str] = "tracer.reliability"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {
        "threshold": "tracer.ace.mask_threshold", "seed": "seed", "baseline": "tracer.interventions.baseline",
    }

    methods: Sequence[str] = setting(METHODS, _methods)
    custom: Mapping[str, MethodSpec] = field(default_factory=dict)
    p: float = setting(0.5, number(0.0, 1.0))
    trials: int = setting(10, integer(1))
    threshold: float = setting(0.1, number(0.0, 1.0, what=" (a share of the maximum |attribution|)"))
    seed: int = setting(0, integer(0))
    baseline: float = setting(0.0, number(-float("inf")))
    batch_size: int = setting(256, integer(1))
    bootstrap: int = setting(1000, integer(1))
    ci: float = setting(0.95, _coverage)
    from_raw: Callable[[torch.Tensor], torch.Tensor] | None = setting(None, function(optional=True))
    baselines: BaselineSettings = field(default_factory=BaselineSettings)

    def __post_init__(self) -> None:
        """Custom entries of ``methods`` (:mod:`causalxai.attribution.custom`) go to ``custom``
        by label; ``methods`` holds labels."""
        try:
            specs = _method_specs(self.methods, self.custom)
        except ValueError as exc:
            self._fail("methods", str(exc))
        object.__setattr__(self, "custom", {s.label: s for s in specs if s.kind != "builtin"})
        object.__setattr__(self, "methods", specs)
        super().__post_init__()

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, section: str | None = None, **extra: Any) -> ReliabilitySettings:
        """From ``tracer.reliability`` (``methods``, ``p``, ``trials``, ``bootstrap``, ``ci``;
        ``lime_samples``, ``superpixel``, ``grad_cam_layer`` and TRACER's ``patch``/``stride``
        go to :class:`BaselineSettings`); ``extra`` sets the other fields."""
        rest = dict(params)
        captum = {k: rest.pop(k) for k in ("lime_samples", "superpixel", "grad_cam_layer", "patch", "stride")
                  if k in rest}
        return super().from_params(rest, section=section, baselines=BaselineSettings.from_config(captum), **extra)



def superpixel_mask(height: int, width: int, size: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Feature ids ``(1, 1, H, W)`` long of ``size × size`` blocks, row-major:
    ``(i // s) · ceil(W / s) + j // s`` (28 × 28, s = 4: 49 features)."""
    if size < 1:
        raise ValueError(f"superpixel size must be >= 1 (tracer.reliability.superpixel), got {size}")
    rows = torch.arange(height, device=device) // size
    cols = torch.arange(width, device=device) // size
    ids = rows[:, None] * math.ceil(width / size) + cols[None, :]
    return ids.view(1, 1, height, width).long()


#: modules Grad-CAM's ``auto`` looks past between the last convolution and its activation
_PASS_THROUGH = {"BatchNorm2d", "Identity", "Dropout", "Dropout2d"}


def grad_cam_layer(model: nn.Module, example_input: torch.Tensor, name: str | None = None) -> str:
    """The module Grad-CAM is hooked on: ``name`` if given (not ``"auto"``), else the last
    convolutional block's *activation*.

    ``auto``: the leaf modules in the order their forward ran on ``example_input`` (one batch);
    the leaf right after the last ``nn.Conv2d`` when it is one of :data:`ACTIVATIONS` (alexnet28:
    ``relu5``, the post-ReLU map of Grad-CAM's paper), or the first one after it past
    normalisation, identity and dropout modules (resnet_small: ``relu`` after ``bn``), else that
    ``nn.Conv2d`` itself (a model applying its activation functionally, ``F.relu``, exposes no
    module for it). A TorchScript layer counts by its scripted class.

    Returns:
        the module's name as ``model.named_modules()`` spells it.
    """
    from causalxai.tracer.model import observed_layers

    if name not in (None, "auto"):
        model.get_submodule(str(name))  # raises naming the missing module
        return str(name)
    modules = dict(model.named_modules())

    def kind(n: str) -> str:  # a TorchScript layer (target_model.ScriptedLayer) by its scripted class
        return str(getattr(modules[n], "kind", type(modules[n]).__name__))

    with torch.no_grad():
        order = observed_layers(model, "all", example_input=example_input[:1])
    convs = [i for i, n in enumerate(order) if isinstance(modules[n], nn.Conv2d) or kind(n) == "Conv2d"]
    if not convs:
        raise ValueError("grad_cam: the model has no nn.Conv2d layer; set tracer.reliability.grad_cam_layer")
    last = convs[-1]
    activations = {a.__name__ for a in ACTIVATIONS}
    for n in order[last + 1:]:  # the first activation after it, past norms and identities (resnet_small: relu)
        if isinstance(modules[n], ACTIVATIONS) or kind(n) in activations:
            return n
        if kind(n) not in _PASS_THROUGH:
            break
    return order[last]


_SHAPE_ONLY = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


@contextlib.contextmanager
def _lrp_rules(model: nn.Module) -> Iterator[None]:
    from captum.attr._core.lrp import (
        SUPPORTED_LAYERS_WITH_RULES,
        SUPPORTED_NON_LINEAR_LAYERS,
    )
    from captum.attr._utils.lrp_rules import EpsilonRule

    added = []
    try:
        for name, mod in model.named_modules():
            if next(mod.children(), None) is not None or hasattr(mod, "rule"):
                continue
            kind = type(mod)
            if kind in SUPPORTED_LAYERS_WITH_RULES or kind in SUPPORTED_NON_LINEAR_LAYERS:
                continue
            if isinstance(mod, _SHAPE_ONLY):
                mod.rule = EpsilonRule()
                added.append(mod)
            else:
                raise TypeError(
                    f"lrp: Captum's LRP has no rule for layer {name!r} ({kind.__name__}); set "
                    "`module.rule` to a captum PropagationRule or leave 'lrp' out of tracer.reliability.methods"
                )
        yield
    finally:
        for mod in added:
            if hasattr(mod, "rule"):
                del mod.rule


def _attribute_batch(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str | MethodSpec,
    s: BaselineSettings,
    reference: torch.Tensor,
    occlusion_reference: torch.Tensor,
) -> torch.Tensor:
    from captum.attr import LRP, KernelShap, Lime

    if isinstance(method, MethodSpec):  # a custom method on the model (causalxai.attribution.custom)
        return custom_attribute(method, model, x.detach(), target)
    if method == "gradient":
        return Gradient(model).attribute(x, target)
    if method == "smoothgrad":  # all draws in one pass, as Captum's NoiseTunnel
        n = int(s.smoothgrad_samples)
        return SmoothGrad(model).attribute(
            x, target, samples=n, noise=float(s.smoothgrad_noise), samples_per_pass=n
        )
    if method == "integrated_gradients":
        return IntegratedGradients(model).attribute(x, target, steps=int(s.ig_steps), rule=s.ig_method)
    if method == "grad_cam":
        layer = model.get_submodule(grad_cam_layer(model, x, s.grad_cam_layer))
        return GradCam(layer_forward(model, layer)).attribute(x, target)
    if method == "occlusion":
        from captum.attr import Occlusion

        c = x.shape[1]
        return Occlusion(model).attribute(
            x,
            sliding_window_shapes=(c, *s.occlusion_patch),
            strides=(c, *s.occlusion_stride),
            baselines=occlusion_reference.to(x),
            target=target,
            perturbations_per_eval=max(1, int(s.perturbations_per_eval) // x.shape[0]),
            show_progress=False,
        )
    if method in ("lime", "kernel_shap"):
        explainer = Lime(model) if method == "lime" else KernelShap(model)
        fmask = superpixel_mask(x.shape[-2], x.shape[-1], int(s.superpixel), device=x.device)
        ref = reference.to(x)
        out = []
        for i in range(x.shape[0]):
            out.append(
                explainer.attribute(
                    x[i : i + 1],
                    baselines=ref,
                    target=target[i : i + 1],
                    feature_mask=fmask,
                    n_samples=int(s.n_samples),
                    perturbations_per_eval=int(s.perturbations_per_eval),
                    show_progress=False,
                )
            )
        return torch.cat(out)
    if method == "lrp":
        with _lrp_rules(model):
            return LRP(model).attribute(x, target=target)
    raise ValueError(f"unknown baseline method {method!r}; choose among {list(BASELINE_METHODS)}")


def baseline_attributions(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor | Sequence[int],
    method: str | MethodSpec,
    *,
    settings: BaselineSettings | None = None,
    reference: float | torch.Tensor = 0.0,
    occlusion_reference: float | torch.Tensor | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A baseline method's attributions ``(N, H, W)`` float32 (CPU), summed over channels.

    Args:
        model: the classifier (eval mode during the call; its mode is restored).
        x: normalised model inputs ``(N, C, H, W)``.
        target: the class ``(N,)`` whose output (logit) each map explains.
        method: one of :data:`BASELINE_METHODS` (module docstring for each), or a custom
            method (:class:`~causalxai.attribution.custom.MethodSpec`: a Captum class or a
            function on the model, ``settings.batch_size`` samples per call).
        settings: :class:`BaselineSettings` (defaults: PAIR / Captum values of the docstring).
        reference: what LIME / KernelSHAP put in absent superpixels, in the normalised
            space: a number or a ``(1, C, H, W)`` tensor (use ``from_raw(0)``).
        occlusion_reference: what Occlusion puts in a window, in the normalised space (a
            number or a ``(1, C, H, W)`` tensor: TRACER's ``from_raw(baseline)``); default
            ``reference``.
        seed: seeds the RNG of SmoothGrad, LIME and KernelSHAP (forked; the caller's
            RNG is untouched).
        device: where to compute (default: where the model's parameters are).

    Gradient-based methods and Occlusion run ``settings.batch_size`` samples per call
    (Occlusion's windows ``perturbations_per_eval // batch`` per forward); LIME and
    KernelSHAP one sample per call (Captum fits one surrogate per sample), their
    perturbations batched ``settings.perturbations_per_eval`` per forward.
    """
    s = settings or BaselineSettings()
    if not isinstance(method, MethodSpec) and method not in BASELINE_METHODS:
        raise ValueError(f"unknown baseline method {method!r}; choose among {list(BASELINE_METHODS)}")
    x = torch.as_tensor(x)
    if x.dim() != 4:
        raise ValueError(f"baseline_attributions: x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    tgt = torch.as_tensor(target).long().reshape(-1)
    if tgt.numel() != x.shape[0]:
        raise ValueError(f"baseline_attributions: {tgt.numel()} targets for {x.shape[0]} inputs")
    dev = model_device(model, device)
    def as_reference(value: float | torch.Tensor) -> torch.Tensor:
        r = torch.as_tensor(value, dtype=x.dtype)
        return (r.expand(1, *x.shape[1:]).clone() if r.dim() == 0 else r).to(dev)

    ref = as_reference(reference)
    occ_ref = ref if occlusion_reference is None else as_reference(occlusion_reference)
    custom = (method,) if isinstance(method, MethodSpec) else ()
    bs = x.shape[0] if method in ("lime", "kernel_shap") else max(int(s.batch_size), 1)
    out = []
    with eval_mode(model), seeded(seed, dev):
        for i in range(0, x.shape[0], bs):
            xb = x[i : i + bs].to(dev).detach().requires_grad_(method not in ("lime", "kernel_shap", *custom))
            a = _attribute_batch(model, xb, tgt[i : i + bs].to(dev), method, s, ref, occ_ref)
            out.append(a.detach().sum(dim=1).float().cpu())
    return torch.cat(out) if out else torch.empty(0, *x.shape[-2:])


# ---------------------------------------------------------------------------------------
# the reliability table


def _as_tensor(a: Any) -> torch.Tensor:
    return torch.as_tensor(a.values if isinstance(a, xr.DataArray) else a)


def reliability_dataset(
    model: nn.Module,
    x_raw: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | None,
    tracer_attribution: torch.Tensor | xr.DataArray,
    settings: ReliabilitySettings | None = None,
    *,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Reliability of TRACER's and the other methods' masks (§4.1, Fig. 3) under both protocols.

    Args:
        model: the classifier.
        x_raw: raw inputs ``(N, C, H, W)`` (before normalisation).
        targets: class ``(N,)`` the baselines explain; None: the model's prediction.
        tracer_attribution: TRACER's attribution ``(N, H, W)``: its threshold masks size the
            equal-size protocol and the random-foreground control, so ``"tracer"`` must be
            among the methods.
        settings: :class:`ReliabilitySettings`: ``methods`` (the output keeps
            :data:`METHODS`' order), ``p``, ``trials``, ``seed``, ``baseline``, ``batch_size``
            and ``from_raw`` of :func:`reliability_changes` (same draws for every method and
            protocol), ``threshold`` of :func:`per_sample_mask`, ``bootstrap`` and ``ci`` of
            :func:`bootstrap_interval`, and ``baselines``.
        device: where the model runs.
        progress: log the methods done at a steady rate.

    Returns:
        Dataset over ``method``, ``protocol`` (:data:`PROTOCOLS`), ``trial`` and ``sample``:
        ``score (method, protocol, trial)``, ``mean`` and ``std`` (ddof 0) over trials,
        ``ci_low``/``ci_high`` (bootstrap over samples), ``diff_ci_low``/``diff_ci_high`` (the
        paired bootstrap interval of the method's score minus TRACER's), ``mask_fraction`` (mean share of a
        sample's pixels in its mask), ``n_empty`` (samples with an empty mask: they never
        change), all ``(method, protocol)``, and ``tracer_mask_size (sample)``; attrs ``p,
        trials, threshold, n_samples, seed, baseline, std_ddof, bootstrap, ci, grad_cam_layer``,
        ``target`` and the baseline settings (``settings_*``).

    Raises:
        causalxai.checks.DegenerateResultError: TRACER's mask is empty for every sample
            (its attribution is 0 everywhere): TRACER's score would be 0 by construction and
            the equal-size protocol would perturb nothing for any method. Every method
            scoring the same under both protocols (e.g. no prediction ever changes) is
            flagged: a warning and the attribute ``degenerate``.
    """
    r = settings or ReliabilitySettings()
    chosen, s, batch_size, trials = list(r.methods), r.baselines, r.batch_size, r.trials
    if "tracer" not in chosen:
        raise ValueError("reliability_dataset: 'tracer' must be among the methods (its masks size the equal-size "
                         "protocol and the random-foreground control)")
    x_raw = torch.as_tensor(x_raw)
    if not x_raw.is_floating_point():
        x_raw = x_raw.float()
    if x_raw.dim() != 4 or x_raw.shape[0] == 0:
        raise ValueError(f"reliability_dataset: x_raw must be (N, C, H, W) with N >= 1, got {tuple(x_raw.shape)}")
    n, _, h, w = x_raw.shape
    if tracer_attribution is None:
        raise ValueError("reliability_dataset: 'tracer' is among the methods but no tracer_attribution was given")
    tracer_attr = _as_tensor(tracer_attribution)
    if tuple(tracer_attr.shape) != (n, h, w):
        raise ValueError(
            f"reliability_dataset: tracer_attribution {tuple(tracer_attr.shape)} must be (N, H, W) = {(n, h, w)}"
        )
    dev = model_device(model, device)
    norm = r.from_raw if r.from_raw is not None else (lambda t: t)
    with torch.no_grad():
        x = torch.cat([norm(x_raw[i : i + batch_size].to(dev)).cpu() for i in range(0, n, batch_size)])
        reference = norm(torch.zeros(1, *x_raw.shape[1:], dtype=x_raw.dtype, device=dev)).cpu()
        occ_reference = norm(torch.full((1, *x_raw.shape[1:]), float(r.baseline), dtype=x_raw.dtype, device=dev)).cpu()
    if targets is None:
        tgt = predict(model, x, batch_size=batch_size, device=dev, output="label")
        target_kind = "prediction"
    else:
        tgt = torch.as_tensor(targets).long().reshape(-1)
        target_kind = "given"
        if tgt.numel() != n:
            raise ValueError(f"reliability_dataset: {tgt.numel()} targets for {n} inputs")

    tracer_mask = per_sample_mask(tracer_attr.cpu(), r.threshold)
    sizes = tracer_mask.flatten(1).sum(1)
    if not bool((sizes > 0).any()):
        refuse("reliability", "TRACER's mask (tracer_mask_size)",
               f"empty for all {n} samples (TRACER's output attribution is 0 or NaN everywhere)",
               causes="no occlusion changes the target model's output (an untrained or collapsed model: "
                      "tracer.model.epochs, tracer.model.lr), or a baseline equal to the images "
                      "(tracer.interventions.baseline)",
               fix="train the target model longer, or choose another tracer.interventions.baseline or patch")
    layer = grad_cam_layer(model, x[:1].to(dev), s.grad_cam_layer) if "grad_cam" in chosen else "none"
    s_run = replace(s, grad_cam_layer=layer) if "grad_cam" in chosen else s

    changes = np.zeros((len(chosen), len(PROTOCOLS), trials, n), dtype=bool)
    frac = np.zeros((len(chosen), len(PROTOCOLS)))
    empty = np.zeros((len(chosen), len(PROTOCOLS)), dtype=np.int64)
    counter = Progress(len(chosen), "reliability", "methods", interval=0.0, enabled=progress)
    for j, method in enumerate(chosen):
        if method == "tracer":
            attr = tracer_attr
        elif method == "random_foreground":
            gen = torch.Generator().manual_seed(int(r.seed) + 1)
            attr = random_foreground_mask(x_raw, sizes, float(r.baseline), gen).float()
        else:
            attr = baseline_attributions(model, x, tgt, r.custom.get(method, method), settings=s_run,
                                         reference=reference, occlusion_reference=occ_reference, seed=r.seed,
                                         device=dev)
        attr = attr.cpu()
        for q, protocol in enumerate(PROTOCOLS):
            mask = per_sample_mask(attr, r.threshold) if protocol == "paper" else equal_size_mask(attr, sizes)
            changes[j, q] = reliability_changes(model, x_raw, mask, r, device=dev).numpy()
            frac[j, q] = float(mask.flatten(1).double().mean(1).mean())
            empty[j, q] = int((~mask.flatten(1).any(1)).sum())
        counter.update(note=f"{method}: score {changes[j, 0].mean():.3f} (paper), {changes[j, 1].mean():.3f} "
                       f"(equal size), {empty[j, 0]} empty masks")
    score = changes.mean(axis=-1)  # (method, protocol, trial)
    boot = bootstrap_scores(changes, r.bootstrap, r.seed)  # (method, protocol, B), paired resamples
    low, high = percentile_interval(boot, r.ci)
    diff_low, diff_high = percentile_interval(boot - boot[chosen.index("tracer")][None], r.ci)

    attrs = {
        "description": "reliability of explanation masks: share of predictions that change when a share p "
        "of each sample's mask is perturbed to the baseline (paper 004 §4.1, Fig. 3), under the paper's protocol "
        "(each method's threshold mask) and an equal-size one (every mask cut to TRACER's size per sample)",
        "p": float(r.p),
        "trials": int(trials),
        "threshold": float(r.threshold),
        "n_samples": int(n),
        "seed": int(r.seed),
        "baseline": float(r.baseline),
        "std_ddof": 0,
        "bootstrap": int(r.bootstrap),
        "ci": float(r.ci),
        "grad_cam_layer": layer,
        "n_tracer_empty": int((sizes == 0).sum()),
        "target": target_kind,
    }
    attrs.update({f"settings_{k}": ("none" if v is None else (list(v) if isinstance(v, tuple) else v))
                  for k, v in asdict(s_run).items()})
    mp = ("method", "protocol")
    ds = xr.Dataset(
        {
            "score": (("method", "protocol", "trial"), score),
            "mean": (mp, score.mean(axis=-1)),
            "std": (mp, score.std(axis=-1, ddof=0)),
            "ci_low": (mp, low),
            "ci_high": (mp, high),
            "diff_ci_low": (mp, diff_low),
            "diff_ci_high": (mp, diff_high),
            "mask_fraction": (mp, frac),
            "n_empty": (mp, empty),
            "tracer_mask_size": (("sample",), sizes.numpy().astype(np.int64)),
        },
        coords={"method": list(chosen), "protocol": list(PROTOCOLS), "trial": np.arange(trials),
                "sample": np.arange(n)},
        attrs=attrs,
    )
    described = {
        "score": "share of samples whose prediction changed, per trial (one random draw of p of each mask)",
        "mean": "reliability score: mean of score over trials",
        "std": "population std (ddof 0) of score over trials",
        "ci_low": f"lower end of the {r.ci:g} percentile bootstrap interval over samples ({r.bootstrap} resamples)",
        "ci_high": f"upper end of the {r.ci:g} percentile bootstrap interval over samples ({r.bootstrap} resamples)",
        "diff_ci_low": f"lower end of the {r.ci:g} paired bootstrap interval of score minus TRACER's score "
        "(same protocol, same resamples)",
        "diff_ci_high": f"upper end of the {r.ci:g} paired bootstrap interval of score minus TRACER's score "
        "(same protocol, same resamples)",
        "mask_fraction": "mean share of a sample's pixels in the method's mask",
        "n_empty": "samples whose mask is empty (nothing perturbed: never changed)",
        "tracer_mask_size": "pixels in TRACER's threshold mask per sample (the equal-size protocol's size)",
        "protocol": "paper: each method's threshold mask (|a| >= threshold * max |a|); equal_size: each method's "
        "top-|a| pixels, as many as TRACER's mask of the sample (ties to the lower pixel index)",
    }
    for k, v in described.items():
        ds[k].attrs["description"] = v
    flag = flag_degenerate(
        ds["mean"], "mean (the score of every method under both protocols)", "reliability",
        causes=f"no perturbation of p = {r.p:g} of a mask changes a prediction differently for any method "
               f"({n} samples, {trials} trials)",
        fix="use more samples (tracer.reliability.n_samples) or a larger share p (tracer.reliability.p)",
        logger=log,
    )
    if flag:
        ds.attrs["degenerate"] = flag
    return ds


def reliability_table(ds: xr.Dataset) -> pd.DataFrame:
    """``tables/reliability.csv``: one row per method × protocol of :func:`reliability_dataset`:
    ``method, protocol, score`` (mean over trials), ``std`` (over trials), ``ci_low, ci_high``
    (bootstrap over samples), ``diff_ci_low, diff_ci_high`` (paired bootstrap interval of score
    − TRACER's), ``n_empty``, ``mask_share`` (mean share of pixels in the mask)."""
    cols = {"mean": "score", "std": "std", "ci_low": "ci_low", "ci_high": "ci_high", "diff_ci_low": "diff_ci_low",
            "diff_ci_high": "diff_ci_high", "n_empty": "n_empty", "mask_fraction": "mask_share"}
    df = ds[list(cols)].to_dataframe().rename(columns=cols).reset_index()
    return df[["method", "protocol", *cols.values()]]
