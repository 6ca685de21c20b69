"""Rule zoo_smallcnnzoo: extract and read the Small CNN Zoo archive of one dataset (downloaded by
rule download_zoo). Never touches the network."""

from causalxai.io import write_dataset
from causalxai.zoo.smallcnnzoo import load_smallcnnzoo_archive

from common import start

start(snakemake, bounded_heap=True)

d = dict(snakemake.params.download)
zoo = load_smallcnnzoo_archive(
    snakemake.input.archive,
    snakemake.wildcards.dataset,
    url=d["url"],
    sha256=d["sha256"],
    final_step=d["final_step"],
    max_models=d["max_models"],
    seed=d["seed"],
)
write_dataset(zoo, snakemake.output.zoo, step="zoo", config=d, seed=d["seed"])
