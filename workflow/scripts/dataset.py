"""Rule dataset: load (download if needed) an image set with the zoo's preprocessing."""
import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.data.dataset import load_dataset  # noqa: E402
from causalxai.io import write_dataset  # noqa: E402

p = snakemake.params  # noqa: F821
opts = {k: v for k, v in p.options.items() if v is not None}
ds = load_dataset(p.name, cache_dir=p.cache_dir, progress=True, **opts)
write_dataset(ds, snakemake.output.dataset, step="dataset", config={"name": p.name, **p.options}, seed=opts.get("seed"))  # noqa: F821
