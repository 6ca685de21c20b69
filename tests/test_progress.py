"""causalxai.progress: readable progress lines at a steady rate."""

import logging

from causalxai.progress import Progress


def test_lines_at_a_steady_rate_and_at_the_end(caplog, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("causalxai.progress.time.monotonic", lambda: now[0])
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        p = Progress(10, "training", "steps", log, interval=15.0)
        p.update(2)  # no time passed: no line
        now[0] += 16
        p.update(3)  # 16 s later: a line with ETA
        now[0] += 1
        p.update(5)  # done: the last line
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "training: 10 steps to do"
    assert lines[1] == "training: 5/10 steps (50 %), elapsed 0:00:16, ETA 0:00:16"
    assert lines[2] == "training: 10/10 steps (100 %), elapsed 0:00:17, ETA 0:00:00"
    assert len(lines) == 3
