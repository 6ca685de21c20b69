"""What every workflow script does first: its log, logging, torch's threads; and provenance.

A script imports this package by name (``from common import start``): Snakemake appends the
folder of a local script to the script's ``sys.path``, and for a hosted workflow (a ``module``
with ``snakefile: github(...)``) the source-cache folder of the script, where
``workflow/rules/common.smk`` caches this package next to the scripts. The science the scripts
call is the installed ``causalxai`` package, which never imports Snakemake; this package is the
one place that reads Snakemake's ``snakemake`` object besides the scripts themselves.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["provenance", "start"]


def start(snakemake: Any, *, torch_threads: bool = False, bounded_heap: bool = False) -> None:
    """Send the script's stderr, warnings and ``logging`` (level INFO) to the job's log.

    Args:
        snakemake: the script's ``snakemake`` object (its first ``log`` file is the job's log).
        torch_threads: give torch the rule's ``threads`` (the rules that declare ``threads``).
        bounded_heap: have freed memory returned to the system at once
            (``causalxai.runtime.bounded_heap``), for the streamed steps whose work per block is
            light (predictions, explain_gather, meta_model, zoo_smallcnnzoo): their peak is then
            one block's, not a fragmented heap's. It made effects 1.7x and training 2-3x slower,
            so the other steps leave it off.
    """
    if not snakemake.log:
        raise ValueError(f"rule {snakemake.rule}: declare a log file (log: ...) for its script")
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # line-buffered: the log is readable while it runs
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    if bounded_heap:
        from causalxai.runtime import bounded_heap as bound

        bound()
    if torch_threads:
        import torch

        torch.set_num_threads(snakemake.threads)


def provenance(snakemake: Any, config: dict[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
    """The ``config`` and ``seed`` keyword arguments of ``causalxai.io.write_dataset``.

    Args:
        snakemake: the script's ``snakemake`` object.
        config: the config values the step used; default: the rule's ``params`` but ``seed``.
        seed: the seed the step used; default: ``params.seed`` (None when the rule has none).

    Returns:
        ``{"config": ..., "seed": ...}``, to pass as ``write_dataset(ds, path, step=..., **provenance(snakemake))``.
    """
    params = dict(snakemake.params.items())
    return {
        "config": config if config is not None else {k: v for k, v in params.items() if k != "seed"},
        "seed": seed if seed is not None else params.get("seed"),
    }

