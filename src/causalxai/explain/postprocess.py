"""Post-processing of saliency maps before effects are estimated (paper 000 App. A.3).

"The generated explanation maps are processed to first remove outliers (via percentile
clipping the values above 99th percentile), following by normalizing all attributions to
fall in [0, 1]. For Grad-CAM which only generates positive attributes, this is
straightforward; for other methods that give positive and negative attributes, we first
normalize to [-1, 1] and then clip any value below 0."

Per map: values above the map's 99th percentile (linear interpolation, as
``numpy.percentile``) are set to it; signed maps are divided by their largest absolute
value (to [-1, 1]) and negatives set to 0; non-negative maps (Grad-CAM) are divided by
their maximum. An all-zero map stays zero.
"""

from __future__ import annotations

import torch

__all__ = ["percentile", "normalize_maps"]


def percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """``numpy.percentile(values, q, axis=-1, keepdims=True)`` (linear), any size."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must lie in [0, 100], got {q}")
    s, _ = torch.sort(values, dim=-1)
    n = s.shape[-1]
    pos = q / 100 * (n - 1)
    lo = int(pos // 1)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return s[..., lo : lo + 1] + frac * (s[..., hi : hi + 1] - s[..., lo : lo + 1])


def normalize_maps(maps: torch.Tensor, signed: bool, clip_percentile: float = 99.0) -> torch.Tensor:
    """Normalise maps ``(..., H, W)`` to [0, 1] as App. A.3 does (see the module docstring).

    Args:
        maps: raw attributions, the last two dims are the image.
        signed: True for methods with signed attributions (Gradient, SmoothGrad, IG);
            False for Grad-CAM.
        clip_percentile: the percentile above which values are clipped.
    """
    flat = maps.flatten(-2)
    flat = torch.minimum(flat, percentile(flat, clip_percentile))
    if signed:
        scale = flat.abs().amax(-1, keepdim=True)
    else:
        if bool((flat < 0).any()):
            raise ValueError("normalize_maps(signed=False) got negative attributions; pass signed=True")
        scale = flat.amax(-1, keepdim=True)
    out = torch.where(scale > 0, flat / torch.where(scale > 0, scale, torch.ones_like(scale)), torch.zeros_like(flat))
    return out.clamp_min(0).view(maps.shape)
