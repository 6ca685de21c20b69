"""Rule zoo_train: train the zoo, many models per vectorized chunk."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.io import open as open_result, write_dataset  # noqa: E402
from causalxai.zoo.train import build_trained_zoo  # noqa: E402

cfg = dict(snakemake.params.train)  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
logging.info("torch %s, %d thread(s)", torch.__version__, torch.get_num_threads())
t0 = time.time()
zoo = build_trained_zoo(open_result(snakemake.input.dataset), cfg)  # noqa: F821
logging.info("trained %d models in %.1f s", zoo.sizes["model"], time.time() - t0)
write_dataset(zoo, snakemake.output.zoo, step="zoo", config=cfg, seed=cfg["seed"])  # noqa: F821
