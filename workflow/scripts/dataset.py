"""Rule dataset: read an image set (downloaded by rule download_images; digits: bundled) with the
zoo's preprocessing, the bundled tabular breast_cancer, or a user data set (data.custom: its loader
or .npz file, validated). Never touches the network."""

from pathlib import Path

from causalxai.data.custom import TABULAR_SETS, load_breast_cancer, load_custom
from causalxai.data.dataset import load_digits, read_dataset
from causalxai.io import write_dataset

from common import start

start(snakemake)

p = snakemake.params
opts = {k: v for k, v in p.options.items() if v is not None and k != "custom"}
if "custom" in p.options:
    ds = load_custom(p.name, p.options["custom"])
elif p.name == "digits":
    ds = load_digits(**opts)
elif p.name in TABULAR_SETS:
    ds = load_breast_cancer(**opts)
else:
    ds = read_dataset(p.name, {Path(f).name: f for f in snakemake.input.downloads})
write_dataset(ds, snakemake.output.dataset, step="dataset", config={"name": p.name, **p.options}, seed=opts.get("seed"))
