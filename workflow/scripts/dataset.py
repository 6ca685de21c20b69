"""Rule dataset: read an image set (downloaded by rule download_images; digits: bundled) with the
zoo's preprocessing. Never touches the network."""

from pathlib import Path

from causalxai.data.dataset import load_digits, read_dataset
from causalxai.io import write_dataset

from common import start

start(snakemake)

p = snakemake.params
opts = {k: v for k, v in p.options.items() if v is not None}
if p.name == "digits":
    ds = load_digits(**opts)
else:
    ds = read_dataset(p.name, {Path(f).name: f for f in snakemake.input.downloads})
write_dataset(ds, snakemake.output.dataset, step="dataset", config={"name": p.name, **p.options}, seed=opts.get("seed"))
