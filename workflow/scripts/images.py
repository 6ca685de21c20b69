"""Rule images: class-balanced probe images from the test split."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.data.images import select_probe_images  # noqa: E402
from causalxai.io import open as open_result, write_dataset  # noqa: E402

p = snakemake.params  # noqa: F821
images = select_probe_images(open_result(snakemake.input.dataset), p.n_images, p.seed)  # noqa: F821
write_dataset(images, snakemake.output.images, step="images", config={"n_images": p.n_images}, seed=p.seed)  # noqa: F821
