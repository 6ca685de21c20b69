"""Rule zoo_train: train the zoo, many models per vectorized chunk."""

import logging
import time

import torch

from causalxai.io import open as open_result, write_dataset
from causalxai.zoo.train import build_trained_zoo

from common import start

start(snakemake, torch_threads=True)

# device and models per chunk: read from the config, not params (changing them re-runs nothing)
cfg = {**snakemake.params.train, "device": snakemake.config["device"],
       "chunk_size": snakemake.config["zoo"]["train"]["chunk_size"]}
logging.info("torch %s, %d thread(s)", torch.__version__, torch.get_num_threads())
t0 = time.time()
zoo = build_trained_zoo(open_result(snakemake.input.dataset), cfg)
logging.info("trained %d models in %.1f s", zoo.sizes["model"], time.time() - t0)
write_dataset(zoo, snakemake.output.zoo, step="zoo", config=cfg, seed=cfg["seed"])
