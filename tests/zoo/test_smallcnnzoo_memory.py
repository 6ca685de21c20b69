"""read_zoo's memory grows with the models it returns, not with the checkpoints it skips.

Two synthetic zoos in the real format (``weights.npy`` rows x 4970 float32, one
``metrics.csv.gz`` row per weights row, ``layout.csv``) with the same runs, one with 3
checkpoints per run and one with 9, are read in fresh child processes; each reports the
kernel's RSS high-water mark (``VmHWM``, reset after its imports), so what is measured is
read_zoo alone. The full-size figures are ``benchmarks/smallcnnzoo_loader.py``'s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causalxai
from causalxai.zoo.hparams import HPARAMS, sample_hparams
from causalxai.zoo.network import zoo_layout

RUNS = 667
N_PARAMS = 4970

CHILD = """
import json, sys
from pathlib import Path
from causalxai.zoo.smallcnnzoo import read_zoo

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))

try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the high-water mark starts again from the RSS now
    base = status("VmRSS")
except OSError:
    print(json.dumps(None))
    sys.exit()
d = Path(sys.argv[1])
zoo = read_zoo({"weights": d / "weights.npy", "metrics": d / "metrics.csv.gz", "layout": d / "layout.csv"}, "mnist")
print(json.dumps({"above_base": status("VmHWM") - base, "models": zoo.sizes["model"],
                  "out": int(zoo["weights"].nbytes), "dropped": zoo.attrs["n_dropped_nonfinite"]}))
"""


def write_zoo(folder: Path, runs: int, steps: tuple[int, ...], seed: int = 0) -> int:
    """A zoo of ``runs`` runs x ``steps`` checkpoints (rows grouped by run); its rows."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    n = runs * len(steps)
    weights = rng.standard_normal((n, N_PARAMS), dtype=np.float32)
    final = np.flatnonzero(np.tile(np.asarray(steps), runs) == 86)
    weights[final[0], 3] = np.nan  # one crashed run
    np.save(folder / "weights.npy", weights)
    hp = sample_hparams(runs, {}, seed).iloc[np.repeat(np.arange(runs), len(steps))].reset_index(drop=True)
    metrics = pd.DataFrame({f"config.{name}": hp[name].to_numpy() for name in HPARAMS})
    metrics["config.dataset"] = "mnist"
    metrics["modeldir"] = [f"/runs/{r}" for r in np.repeat(np.arange(runs), len(steps))]
    metrics["step"] = np.tile(np.asarray(steps), runs)
    for col in ("test_accuracy", "train_accuracy", "test_loss", "train_loss"):
        metrics[col] = rng.uniform(size=n)
    metrics[sorted(metrics.columns)].to_csv(folder / "metrics.csv.gz", index=False)
    zoo_layout(1).to_csv(folder / "layout.csv", index=False)
    return n


def read_in_child(folder: Path) -> dict | None:
    src = str(Path(causalxai.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_grows_with_the_final_rows_not_the_checkpoints(tmp_path):
    few = write_zoo(tmp_path / "few", RUNS, (0, 40, 86))
    many = write_zoo(tmp_path / "many", RUNS, (0, 1, 2, 3, 20, 40, 60, 80, 86))
    assert (few, many) == (3 * RUNS, 9 * RUNS)  # 2,001 and 6,003 rows
    a, b = read_in_child(tmp_path / "few"), read_in_child(tmp_path / "many")
    if a is None:
        pytest.skip("no /proc/self/clear_refs: the peak RSS of a step cannot be measured here")
    for r in (a, b):
        assert r["models"] == RUNS - 1 and r["dropped"] == 1
        assert r["out"] == (RUNS - 1) * N_PARAMS * 4  # 13 MB of weights returned
    # tripling the checkpoint rows (40 -> 119 MB of weights.npy) raises the peak by < 20 %
    assert b["above_base"] < 1.2 * a["above_base"], (a, b)
    # and the peak is of the order of the output, not of the file
    assert b["above_base"] < 3 * b["out"] + (16 << 20), (a, b)
