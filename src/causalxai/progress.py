"""Progress a person can read in a job's log: ``done/total unit (pct), elapsed, ETA`` via
:mod:`logging`, at a steady rate (a line when the work starts, at the first unit, at most one per
``interval`` seconds, and the last one when the work is done), instead of a progress bar's carriage
returns. The workflow's scripts send ``logging`` into the rule's log (``logs/<dataset>/…``), so
``tail -f`` on it shows a step moving. Nothing here is science.
"""

from __future__ import annotations

import logging
import threading
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
        logger: where to log (default this module's logger, ``causalxai.progress``).
        interval: seconds between two lines at least (0: a line per update).
        enabled: ``False`` logs nothing (for a caller that reports its own progress).
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "",
        logger: logging.Logger | None = None,
        *,
        interval: float = 15.0,
        enabled: bool = True,
    ) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.log = logger or logging.getLogger(__name__)
        self.interval, self.enabled = float(interval), bool(enabled)
        self.done = 0
        self._lock = threading.Lock()  # chunks computed in worker threads update one Progress
        self._start = self._last = time.monotonic()
        if self.enabled:
            self.log.info("%s: %d %s to do", desc, self.total, unit)

    def update(self, n: int = 1, note: str = "") -> None:
        """Add ``n`` units; log at the first unit, when ``interval`` seconds passed since the last
        line, or when all is done; ``note`` (e.g. the last epoch's loss) ends the line."""
        with self._lock:
            first = self.done == 0
            self.done += int(n)
            if not self.enabled:
                return
            now = time.monotonic()
            if first or now - self._last >= self.interval or (self.total and self.done >= self.total):
                self._last = now
                self._line(now, note)

    def _line(self, now: float, note: str) -> None:
        elapsed = now - self._start
        tail = f"; {note}" if note else ""
        if self.total and self.done:
            eta = elapsed * (self.total - self.done) / self.done
            self.log.info("%s: %d/%d %s (%.0f %%), elapsed %s, ETA %s%s", self.desc, self.done, self.total, self.unit,
                          100.0 * self.done / self.total, _clock(elapsed), _clock(max(eta, 0.0)), tail)
        else:
            self.log.info("%s: %d %s, elapsed %s%s", self.desc, self.done, self.unit, _clock(elapsed), tail)
