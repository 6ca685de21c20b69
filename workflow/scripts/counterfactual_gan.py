"""Rule counterfactual_gan: train the conditional autoencoder-GAN of paper 004 §3.5 (App. F) on the train split."""

import logging

from causalxai.counterfactual.gan import GanSettings, history_dataset, save_gan, train_counterfactual_gan
from causalxai.io import open as open_result, write_dataset
from causalxai.tracer.target_model import dataset_tensors, load_target_model

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
cfg = dict(p.gan)
device = snakemake.config["device"]  # not a param: changing it re-runs nothing
settings = GanSettings.from_params({**cfg, "seed": p.seed})
model = load_target_model(snakemake.input.weights)
x, y = dataset_tensors(open_result(snakemake.input.dataset), "train")
generator, discriminator, hist = train_counterfactual_gan(x, y, model, settings, device=device, progress=True)
logging.info("trained on %d images (neighbours from %d) in %.1f s; final validity %.3f, l1 to x_nn %.1f",
             hist["n_train"], hist["n_nn_subset"], hist["train_seconds"],
             hist["validity"][-1] if hist["validity"] else float("nan"),
             hist["loss_l1"][-1] if hist["loss_l1"] else float("nan"))
save_gan(generator, discriminator, snakemake.output.weights, {**cfg, "seed": p.seed})
write_dataset(history_dataset(hist), snakemake.output.history, step="counterfactual_gan",
              config={**cfg, "device": device}, seed=p.seed)
