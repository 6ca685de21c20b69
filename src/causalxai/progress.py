"""Progress a person can read in a job's log: ``done/total (pct), elapsed, ETA`` via
:mod:`logging`, at a steady rate (at most one line per ``interval`` seconds, and the last
one when the work is done), instead of a progress bar's carriage returns. Nothing here is
science.
"""

from __future__ import annotations

import logging
import time

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Counts work done and logs it (INFO) at most every ``interval`` seconds.

    Args:
        total: units of work in all (e.g. model-steps); 0 logs only the end.
        desc: what is being done (starts every line).
        unit: the unit's name.
        logger: where to log (default this module's logger).
        interval: seconds between two lines at least.
    """

    def __init__(
        self, total: int, desc: str, unit: str = "", logger: logging.Logger | None = None, interval: float = 15.0
    ) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.log = logger or logging.getLogger(__name__)
        self.interval = float(interval)
        self.done = 0
        self._start = self._last = time.monotonic()
        self.log.info("%s: %d %s to do", desc, self.total, unit)

    def update(self, n: int = 1) -> None:
        """Add ``n`` units; log when ``interval`` seconds passed since the last line or all is done."""
        self.done += int(n)
        now = time.monotonic()
        if now - self._last >= self.interval or (self.total and self.done >= self.total):
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self._start
        if self.total and self.done:
            eta = elapsed * (self.total - self.done) / self.done
            self.log.info("%s: %d/%d %s (%.0f %%), elapsed %s, ETA %s", self.desc, self.done, self.total, self.unit,
                          100.0 * self.done / self.total, _clock(elapsed), _clock(max(eta, 0.0)))
        else:
            self.log.info("%s: %d %s, elapsed %s", self.desc, self.done, self.unit, _clock(elapsed))
