"""Files in a results folder that the current plan does not make: outputs of another config.

After a config change that drops a method, a data set or a figure, the files the old config made
stay in ``results/`` beside the new ones. The workflow lists them at the start of a run
(``workflow/rules/consistency.smk``, Snakemake's ``onstart``) with :func:`stale_files` and
:func:`stale_message`, and writes the whole list to a file for the clean-up. Nothing here
imports Snakemake: the workflow passes the paths its plan produces.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

__all__ = ["stale_files", "stale_message", "write_listing", "SHOWN"]

#: files named in the warning; the rest are counted (all are in the listing file)
SHOWN = 20


def _norm(path: str | os.PathLike[str]) -> str:
    return Path(os.path.normpath(path)).as_posix()


def stale_files(folder: str | os.PathLike[str], produced: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The files under ``folder`` that no path of ``produced`` names (nor a folder above them).

    Args:
        folder: the results folder, relative to the working directory as ``produced`` is
            (``results``); a missing folder has no stale files.
        produced: every file (and output folder) the plan makes, finished or not: the outputs,
            logs and benchmarks of its jobs.

    Returns:
        The stale files, sorted, as paths relative to the working directory (``/``-separated).
    """
    made = {_norm(p) for p in produced}
    stale = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = _norm(dirpath)
        if here in made:
            dirnames.clear()  # an output folder: everything in it is produced
            continue
        for name in sorted(filenames):
            path = _norm(os.path.join(dirpath, name))
            if path not in made:
                stale.append(path)
    return sorted(stale)


def write_listing(stale: list[str], listing: str | os.PathLike[str]) -> None:
    """Write ``stale`` one path a line to ``listing`` (removed when there are none, so an old
    listing never outlives the files it named)."""
    listing = Path(listing)
    if not stale:
        listing.unlink(missing_ok=True)
        return
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{path}\n" for path in stale))


def stale_message(stale: list[str], listing: str | os.PathLike[str], folder: str = "results") -> str:
    """The warning that names the stale files (at most :data:`SHOWN`, then a count) and how to remove them.

    Args:
        stale: :func:`stale_files`.
        listing: the file that holds the whole list (:func:`write_listing`).
        folder: the results folder's name, for the message.

    Returns:
        The message (empty when nothing is stale).
    """
    if not stale:
        return ""
    shown = "\n".join(f"    {path}" for path in stale[:SHOWN])
    more = f"\n    ... and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
    return (
        f"{len(stale)} file(s) under {folder}/ are made by no job of this run: outputs of another config "
        "(a dropped method, data set or sample) or of an earlier version. They are not results of this "
        f"config, and the report and the figures do not use them:\n{shown}{more}\n"
        f"The whole list is in {listing}. Remove them all with\n"
        f"    xargs -d '\\n' rm -f -- < {listing}\n"
        "or keep them by moving them elsewhere (see the README, \"A consistent results folder\")."
    )
