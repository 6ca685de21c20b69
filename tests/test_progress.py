"""causalxai.progress: readable progress lines at a steady rate."""

import logging

from causalxai.progress import Progress


def test_lines_at_a_steady_rate_and_at_the_end(caplog, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("causalxai.progress.time.monotonic", lambda: now[0])
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        p = Progress(10, "training", "steps", log, interval=15.0)
        p.update(2)  # the first update: a line, whatever the time
        p.update(0)  # no time passed: no line
        now[0] += 16
        p.update(3)  # 16 s later: a line with ETA
        now[0] += 1
        p.update(5)  # done: the last line
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "training: 10 steps to do"
    assert lines[1] == "training: 2/10 steps (20 %), elapsed 0:00:00, ETA 0:00:00"
    assert lines[2] == "training: 5/10 steps (50 %), elapsed 0:00:16, ETA 0:00:16"
    assert lines[3] == "training: 10/10 steps (100 %), elapsed 0:00:17, ETA 0:00:00"
    assert len(lines) == 4


def test_first_unit_notes_throttling_and_disabled(caplog):
    caplog.set_level(logging.INFO, logger="causalxai.progress")
    p = Progress(100, "samples", "samples", interval=3600)
    for _ in range(100):
        p.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0] == "samples: 100 samples to do"
    assert lines[1].startswith("samples: 1/100 samples (1 %), elapsed 0:00:00, ETA")
    assert lines[2].startswith("samples: 100/100 samples (100 %)") and "ETA 0:00:00" in lines[2]
    caplog.clear()
    every = Progress(3, "epochs", "epochs", interval=0.0)
    for i in range(3):
        every.update(note=f"loss {i}")
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "epochs: 3 epochs to do", "epochs: 1/3 epochs (33 %)", "epochs: 2/3 epochs (67 %)",
        "epochs: 3/3 epochs (100 %)"]
    assert caplog.records[-1].getMessage().endswith("; loss 2")
    caplog.clear()
    Progress(2, "quiet", enabled=False).update()
    assert not caplog.records
