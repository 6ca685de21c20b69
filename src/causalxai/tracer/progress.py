"""Progress a person can watch: paper 004's long steps log how far they are at a steady rate.

:class:`Progress` counts the units of a step (samples, epochs, models, methods) and writes
one ``logging`` line at most every ``every`` seconds (and at the first and last unit): how
many units are done out of how many, the share, the elapsed time and an estimate of the time
left from the mean rate so far. The workflow's scripts send ``logging`` into the rule's log
(``logs/<dataset>/tracer/<rule>.log``), so ``tail -f`` on it shows the step moving.
"""

from __future__ import annotations

import logging
import math
import time

__all__ = ["Progress"]

_LOG = logging.getLogger("causalxai.progress")


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Counts done units and logs ``what: i/n (p %), elapsed h:mm:ss, ETA h:mm:ss``.

    Args:
        what: the step's name in the log line (e.g. ``"interventions: samples"``).
        total: how many units the step has.
        every: the least number of seconds between two lines (default 15).
        enabled: ``False`` logs nothing (a caller that reports its own progress).
    """

    def __init__(self, what: str, total: int, *, every: float = 15.0, enabled: bool = True):
        self.what, self.total, self.every, self.enabled = str(what), int(total), float(every), bool(enabled)
        self.done = 0
        self.start = time.monotonic()
        self._last = -float("inf")

    def step(self, n: int = 1, note: str = "") -> None:
        """``n`` more units done; logs when ``every`` seconds passed, or at the first or last unit."""
        self.done += int(n)
        now = time.monotonic()
        if not self.enabled:
            return
        if self.done in (int(n), self.total) or now - self._last >= self.every:
            self._last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            share = 100.0 * self.done / self.total if self.total else 100.0
            _LOG.info("%s: %d/%d (%.0f %%), elapsed %s, ETA %s%s", self.what, self.done, self.total, share,
                      _clock(elapsed), "?" if math.isnan(eta) else _clock(eta), f"; {note}" if note else "")
