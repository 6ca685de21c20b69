"""Rule download_images: download one file of an image set (resumable, MD5-verified); a local rule."""

from causalxai.data.download import fetch

from common import start

start(snakemake)

source = snakemake.params.source
fetch(source["urls"], snakemake.output.file, md5=source["md5"], progress=True)
