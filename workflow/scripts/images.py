"""Rule images: class-balanced probe images from the test split."""

from causalxai.data.images import select_probe_images
from causalxai.io import open as open_result, write_dataset

from common import provenance, start

start(snakemake)

p = snakemake.params
images = select_probe_images(open_result(snakemake.input.dataset), p.n_images, p.seed)
write_dataset(images, snakemake.output.images, step="images", **provenance(snakemake))
