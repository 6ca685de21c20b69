"""Rule counterfactual_gan: train the conditional autoencoder-GAN of paper 004 §3.5 (App. F) on the train split."""
import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

import torch  # noqa: E402

from causalxai.counterfactual.gan import GanSettings, history_dataset, save_gan, train_counterfactual_gan  # noqa: E402
from causalxai.io import open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.target_model import dataset_tensors, load_target_model  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
p = snakemake.params  # noqa: F821
cfg = dict(p.gan)
settings = GanSettings.from_params({**cfg, "seed": p.seed})
model = load_target_model(snakemake.input.weights)  # noqa: F821
x, y = dataset_tensors(open_result(snakemake.input.dataset), "train")  # noqa: F821
generator, discriminator, hist = train_counterfactual_gan(x, y, model, settings, device=p.device, progress=True)
logging.info("trained on %d images (neighbours from %d) in %.1f s; final validity %.3f, l1 to x_nn %.1f",
             hist["n_train"], hist["n_nn_subset"], hist["train_seconds"],
             hist["validity"][-1] if hist["validity"] else float("nan"),
             hist["loss_l1"][-1] if hist["loss_l1"] else float("nan"))
save_gan(generator, discriminator, snakemake.output.weights, {**cfg, "seed": p.seed})  # noqa: F821
write_dataset(history_dataset(hist), snakemake.output.history, step="counterfactual_gan",  # noqa: F821
              config={**cfg, "device": p.device}, seed=p.seed)
