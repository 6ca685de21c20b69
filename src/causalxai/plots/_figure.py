"""What every figure module shares: the resolution and the atomic PNG write."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from causalxai.io import atomic_path  # noqa: E402

__all__ = ["DPI", "save_figure"]

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
