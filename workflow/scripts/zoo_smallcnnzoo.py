"""Rule zoo_smallcnnzoo: download, verify and read the Small CNN Zoo of one dataset."""
import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import write_dataset  # noqa: E402
from causalxai.zoo.smallcnnzoo import load_smallcnnzoo  # noqa: E402

d = dict(snakemake.params.download)  # noqa: F821
zoo = load_smallcnnzoo(
    snakemake.wildcards.dataset,  # noqa: F821
    snakemake.params.cache_dir,  # noqa: F821
    url=d["url"],
    sha256=d["sha256"],
    final_step=d["final_step"],
    max_models=d["max_models"],
    seed=d["seed"],
)
write_dataset(zoo, snakemake.output.zoo, step="zoo", config=d, seed=d["seed"])  # noqa: F821
