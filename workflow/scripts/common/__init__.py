"""What every workflow script does first: its log, logging, torch's threads, its inputs checked
and recorded (``causalxai.io.begin_job``); and provenance.

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

__all__ = ["job_inputs", "provenance", "start"]

#: inputs that are not results (the package's source files, listed so that editing them re-runs
#: a rule): neither checked nor recorded
CODE_INPUTS = ("code",)


def start(snakemake: Any, *, torch_threads: bool = False, bounded_heap: bool = False) -> None:
    """Send the script's stderr, warnings and ``logging`` (level INFO) to the job's log; check the
    job's inputs and record them for the files it writes (``causalxai.io.begin_job``: a netCDF
    input that cannot be read, or that was made from another version of one of its own inputs
    than the one on disk, stops the job here, before any work, with a message naming the files and
    the ``--forcerun`` to use; the message goes to the log and to Snakemake's terminal).

    Args:
        snakemake: the script's ``snakemake`` object (its first ``log`` file is the job's log).
        torch_threads: give torch the rule's ``threads`` (the rules that declare ``threads``).
        bounded_heap: have freed memory returned to the system at once
            (``causalxai.runtime.bounded_heap``), for the streamed steps whose work per block is
            light (predictions, explain_gather, meta_model, zoo_smallcnnzoo): their peak is then
            one block's, not a fragmented heap's. It made effects 1.7x and training 2-3x slower,
            so the other steps keep freed medium-size blocks for their next pass instead
            (``causalxai.runtime.fast_heap``: SmoothGrad of the zoo 1.9x faster).
    """
    if not snakemake.log:
        raise ValueError(f"rule {snakemake.rule}: declare a log file (log: ...) for its script")
    terminal = sys.stderr
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # line-buffered: the log is readable while it runs
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    from causalxai import io

    try:
        io.begin_job(job_inputs(snakemake), wildcards=dict(snakemake.wildcards.items()))
    except (io.CorruptFileError, io.ProvenanceError) as err:
        print(f"rule {snakemake.rule}: {err}", file=terminal, flush=True)
        raise
    from causalxai.runtime import bounded_heap as bound, fast_heap

    bound() if bounded_heap else fast_heap()
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



def job_inputs(snakemake: Any) -> dict[str, str]:
    """The job's input files by name, without the code inputs (:data:`CODE_INPUTS`).

    Args:
        snakemake: the script's ``snakemake`` object.

    Returns:
        name -> path; a named list of files gives ``name[0]``, ``name[1]``, ...; an unnamed
        input ``input[i]`` (its position).
    """
    out: dict[str, str] = {}
    named: set[str] = set()
    for name, value in snakemake.input.items():
        if name in CODE_INPUTS:
            named.update(map(str, [value] if isinstance(value, str) else value))
            continue
        if isinstance(value, str):
            out[name] = str(value)
            named.add(str(value))
        else:
            for i, path in enumerate(value):
                out[f"{name}[{i}]"] = str(path)
                named.add(str(path))
    for i, path in enumerate(snakemake.input):
        if str(path) not in named:
            out[f"input[{i}]"] = str(path)
    return out
