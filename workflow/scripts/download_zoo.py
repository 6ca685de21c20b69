"""Rule download_zoo: download the Small CNN Zoo archive of one dataset (resumable, verified); a local rule."""

from pathlib import Path

from causalxai.zoo.smallcnnzoo import fetch_zoo_archive

from common import start

start(snakemake)

archive = Path(snakemake.output.archive)
d = snakemake.params.download
got = fetch_zoo_archive(snakemake.wildcards.dataset, archive.parent, url=d["url"], sha256=d["sha256"], progress=True)
if got.resolve() != archive.resolve():
    raise RuntimeError(f"fetch_zoo_archive wrote {got}, the rule expects {archive}")
