"""Paper 004 Table 2's C1-C3, built exactly: parameter and MAC counts."""

from __future__ import annotations

import pytest
import torch

from causalxai.compress.measure import count_flops
from causalxai.compress.paper_table2 import PAPER_TABLE2, applies, paper_table2_models


def test_paper_table2_counts():
    models = paper_table2_models()
    # by hand: trunk conv 1*64*25+64, 64*32*9+32; heads Linear(i→o) = i*o + o
    trunk = (1 * 64 * 25 + 64) + (64 * 32 * 9 + 32)
    hand = {"C1": trunk + 4608 * 2048 + 2048 + 2048 * 1024 + 1024 + 1024 * 10 + 10,
            "C2": trunk + 4608 * 1024 + 1024 + 1024 * 10 + 10,
            "C3": trunk + 4608 * 10 + 10}
    trunk_macs = 64 * 25 * 26 * 26 + 32 * 64 * 9 * 26 * 26
    hand_macs = {"C1": trunk_macs + 4608 * 2048 + 2048 * 1024 + 1024 * 10,
                 "C2": trunk_macs + 4608 * 1024 + 1024 * 10, "C3": trunk_macs + 4608 * 10}
    for name, m in models.items():
        n = sum(p.numel() for p in m.parameters())
        assert n == hand[name] == PAPER_TABLE2[name][0]
        macs = count_flops(m, (1, 28, 28)) // 2
        assert macs == hand_macs[name]
        assert macs / 1e6 == pytest.approx(PAPER_TABLE2[name][1], abs=0.05)
        assert m.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        assert tuple(m[:5](torch.zeros(1, 1, 28, 28)).shape) == (1, 32, 12, 12)
    assert applies((1, 28, 28), 10) and not applies((3, 28, 28), 10) and not applies((1, 28, 28), 4)
