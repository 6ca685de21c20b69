"""Progress lines of the long steps: first, last and at most every `every` seconds."""

from __future__ import annotations

import logging

from causalxai.tracer.progress import Progress


def test_logs_first_last_and_throttles(caplog):
    caplog.set_level(logging.INFO, logger="causalxai.progress")
    p = Progress("samples", 100, every=3600)
    for _ in range(100):
        p.step()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("samples: 1/100 (1 %), elapsed 0:00:00, ETA")
    assert lines[1].startswith("samples: 100/100 (100 %)") and "ETA 0:00:00" in lines[1]
    caplog.clear()
    every = Progress("epochs", 3, every=0.0)
    for i in range(3):
        every.step(note=f"loss {i}")
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["epochs: 1/3 (33 %)", "epochs: 2/3 (67 %)",
                                                                     "epochs: 3/3 (100 %)"]
    assert caplog.records[-1].getMessage().endswith("; loss 2")
    caplog.clear()
    Progress("quiet", 2, enabled=False).step()
    assert not caplog.records
