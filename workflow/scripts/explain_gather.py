"""Rule explain_gather: one method's shards into explanations/<method>.nc, normalised (App. A.3)."""
import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.study.explain import ExplainSettings, gather, normalise_explanations  # noqa: E402
from causalxai.io import open as open_result, write_dataset  # noqa: E402

cfg = dict(snakemake.params.explain)  # noqa: F821
ds = gather([open_result(p) for p in snakemake.input.shards])  # noqa: F821
ds = normalise_explanations(ds, cfg["method"], ExplainSettings.from_config(cfg))
logging.info("%s: degenerate (zero-scale) maps per effect: %s (%s)", cfg["method"], ds.attrs["n_degenerate"], cfg["zero_maps"])
n_img, h, w = ds.sizes["image"], ds.sizes["y"], ds.sizes["x"]
chunks = (1, 1, n_img, h, w)
write_dataset(
    ds, snakemake.output.explanations, step="explain", config=cfg, seed=cfg["seed"],  # noqa: F821
    encoding={"E": {"chunksizes": chunks}, "attribution": {"chunksizes": chunks}},
)
