"""What every figure module shares: the resolution, the atomic PNG write and the check of its inputs."""

from __future__ import annotations

import os
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from causalxai.io import atomic_path  # noqa: E402

__all__ = ["DPI", "require", "save_figure"]

#: resolution of every PNG the workflow writes
DPI = 120


def save_figure(fig: Figure, path: str | os.PathLike[str], **kwargs) -> Figure:
    """Write ``fig`` as a PNG atomically (:class:`causalxai.io.atomic_path`), close it, return it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, **kwargs)
    finally:
        plt.close(fig)
    return fig


def require(ds: xr.Dataset, names: Iterable[str], what: str) -> None:
    """Raise :class:`ValueError` naming the variables of ``names`` that ``ds`` (the file ``what``) lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        have = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        raise ValueError(f"{what} lacks {', '.join(missing)} (it holds: {have}); is it the output of the right step?")
