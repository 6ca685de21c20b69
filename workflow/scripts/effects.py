"""Rule effects: ITE_Y and ITE_E per hyperparameter, value, bucket and image; correlations."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.effects.table import compute_effects  # noqa: E402
from causalxai.io import open as open_result, write_dataset  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
t0 = time.time()
ds = compute_effects(
    open_result(inp.zoo), open_result(inp.buckets), open_result(inp.predictions),
    {m: open_result(inp[f"E_{m}"]) for m in p.methods},
    kernel=p.kernel, cap=p.cap, seed=p.seed,
)
logging.info("effects in %.1f s; %d empty cells", time.time() - t0, ds.attrs["n_empty_cells"])
write_dataset(ds, snakemake.output.effects, step="effects", config={"kernel": p.kernel, "cap": p.cap, "methods": p.methods}, seed=p.seed)  # noqa: F821
