"""Memory that does not grow with the zoo (issue 15): the memory-bound steps run at N and
2N models in fresh processes (benchmarks/scale.py, the true peak of each), next to the
in-memory gather they replaced as a control that does grow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCALE = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"
STEPS = ("predictions", "explain_shard", "gather", "effects", "meta_model")
SMALL, LARGE = 600, 1200


@pytest.fixture(scope="module")
def peaks(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale") / "peaks.json"
    # 20 images of 28x28: one method's raw maps are 75 MB at 600 models, 150 MB at 1,200; the
    # effects step shares a bucket's Gram matrix only up to 4 MiB here (its default bound is
    # 128 MiB, which the small zoos would not reach), so both sizes take the bounded path. The
    # steps run as their rules do: the streamed ones with bounded_heap, explain_shard and
    # effects with glibc's own heap, whose fragmentation adds ~25 MB to effects from 300 to 600
    # models and nothing after (so the sizes start at 600). Two bootstrap replicates and two
    # permutations: memory does not depend on their number, the time does (4 and 4 took 76 of 160 s)
    cmd = [sys.executable, str(SCALE), "--models", str(SMALL), str(LARGE), "--images", "20", "--steps", *STEPS,
           "--naive", "--shard-models", "64", "--bootstrap", "2", "--permutations", "2", "--meta-epochs", "1",
           "--gram-bytes", str(4 * 2**20), "--threads", "1", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    return {(r["step"], r["models"]): r["peak_mb"] for r in rows}


@pytest.mark.parametrize("step", STEPS)
def test_peak_memory_does_not_grow_with_the_zoo(peaks, step):
    small, large = peaks[(step, SMALL)], peaks[(step, LARGE)]
    msg = f"{step}: peak {small:.0f} MB at {SMALL} models, {large:.0f} MB at {LARGE}"
    assert large / small < 1.2, msg
    # and in absolute terms: far below the 75 MB of maps (or 12 MB of weights) the zoo added
    assert large - small < 40, msg


def test_the_in_memory_gather_grows_so_the_check_can_fail(peaks):
    # the control: concatenating the shards in memory, as before issue 15, grows with the zoo
    # by about 4x the maps (+300 MB from 600 to 1,200 models here), which the check above detects
    naive = peaks[("gather_naive", LARGE)] - peaks[("gather_naive", SMALL)]
    streamed = peaks[("gather", LARGE)] - peaks[("gather", SMALL)]
    assert naive > 150, naive
    assert streamed < 40 < naive
