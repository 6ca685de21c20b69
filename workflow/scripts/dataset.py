"""Rule dataset: load (download if needed) an image set with the zoo's preprocessing."""

from causalxai.data.dataset import load_dataset
from causalxai.io import write_dataset

from common import start

start(snakemake)

p = snakemake.params
opts = {k: v for k, v in p.options.items() if v is not None}
ds = load_dataset(p.name, cache_dir=p.cache_dir, progress=True, **opts)
write_dataset(ds, snakemake.output.dataset, step="dataset", config={"name": p.name, **p.options}, seed=opts.get("seed"))
