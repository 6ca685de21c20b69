"""Rule meta_model: an MLP predicting each model's prediction from (image, hyperparameters) (paper 000 App. A.2)."""

import logging
import time

from causalxai.io import open as open_result, write_dataset
from causalxai.study.meta_model import MetaModelSettings, fit_meta_model
from causalxai.zoo.dataset import open_hparams

from common import start

start(snakemake, torch_threads=True, bounded_heap=True)

p = snakemake.params
inp = snakemake.input
cfg = dict(p.meta_model)
device = snakemake.config["device"]  # not a param: changing it re-runs nothing
t0 = time.time()
ds = fit_meta_model(
    open_hparams(inp.zoo), open_result(inp.images), open_result(inp.predictions, variables=["target"]),
    MetaModelSettings.from_params(cfg, p.seed, device),
)

for s in ds["subset"].values:
    r = ds.sel(subset=s)
    logging.info(
        "%s: accuracy %.3f on %d held-out models (train %.3f on %d; majority baseline %.3f)",
        s, r["accuracy"], r["n_eval_models"], r["train_accuracy"], r["n_train_models"], r["chance_accuracy"],
    )
logging.info("meta_model in %.1f s", time.time() - t0)
write_dataset(ds, snakemake.output.meta_model, step="meta_model", config={**cfg, "device": device}, seed=p.seed)
