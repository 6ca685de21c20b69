"""Rule explain_gather: one method's shards into explanations/<method>.nc."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.explain.suite import gather  # noqa: E402
from causalxai.io import open as open_result, write_dataset  # noqa: E402

cfg = dict(snakemake.params.explain)  # noqa: F821
ds = gather([open_result(p) for p in snakemake.input.shards])  # noqa: F821
n_img, h, w = ds.sizes["image"], ds.sizes["y"], ds.sizes["x"]
write_dataset(
    ds, snakemake.output.explanations, step="explain", config=cfg, seed=cfg["seed"],  # noqa: F821
    encoding={"E": {"chunksizes": (1, 1, n_img, h, w)}},
)
