"""Rule zoo_smallcnnzoo: download, verify and read the Small CNN Zoo of one dataset."""

from causalxai.io import write_dataset
from causalxai.zoo.smallcnnzoo import load_smallcnnzoo

from common import start

start(snakemake)

d = dict(snakemake.params.download)
zoo = load_smallcnnzoo(
    snakemake.wildcards.dataset,
    snakemake.params.cache_dir,
    url=d["url"],
    sha256=d["sha256"],
    final_step=d["final_step"],
    max_models=d["max_models"],
    seed=d["seed"],
)
write_dataset(zoo, snakemake.output.zoo, step="zoo", config=d, seed=d["seed"])
