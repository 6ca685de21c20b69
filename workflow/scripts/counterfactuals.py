"""Rule counterfactuals: counterfactuals of the misclassified (and some correct) test samples, their metrics,
and TRACER on originals vs counterfactuals (paper 004 §3.5, App. C Fig. 8)."""

import logging
import time

import torch

from causalxai.counterfactual.counterfactuals import (
    CounterfactualSettings,
    counterfactual_table,
    counterfactuals,
    methods_table_of,
    select_samples,
    tracer_comparison,
)
from causalxai.counterfactual.gan import load_gan
from causalxai.io import atomic_path, open as open_result, write_dataset
from causalxai.plots.counterfactuals import plot_counterfactuals
from causalxai.runtime import resolve_device
from causalxai.tracer.model import observed_layers
from causalxai.tracer.pipeline import TracerSettings
from causalxai.tracer.target_model import dataset_tensors, load_target_model

from common import start

start(snakemake, torch_threads=True)

p, inp, out = snakemake.params, snakemake.input, snakemake.output
cfg = dict(p.counterfactuals)
settings = CounterfactualSettings.from_params({**cfg, "seed": p.seed})
# inputs per forward pass and device: read from the config, not params (changing them re-runs nothing)
batch_size = snakemake.config["tracer"]["interventions"]["batch_size"]
device = resolve_device(snakemake.config["device"])
model = load_target_model(inp.weights)
tracer = TracerSettings.from_params({**p.tracer, "batch_size": batch_size})
generator, discriminator, _ = load_gan(inp.gan)
data = open_result(inp.dataset)
x_train, y_train = dataset_tensors(data, "train")
x, y = dataset_tensors(data, "test")
sel = select_samples(model, x, y, settings.n_correct, settings.seed, n_misclassified=settings.n_misclassified)
logging.info("%d misclassified and %d correct test samples", (sel["kind"] == "misclassified").sum(),
             (sel["kind"] == "correct").sum())
t0 = time.time()
cf = counterfactuals(generator, model, x[sel["index"]], sel, settings, discriminator=discriminator,
                     pool=(x_train, y_train), device=device)
cf["sample"].attrs["description"] = "index of the sample among the dataset's test split"
logging.info("counterfactuals in %.1f s: validity %.3f (misclassified %.3f), proximity l1 %.1f (generator output "
             "%.1f, mean alpha %.2f), nn distance %.1f", time.time() - t0, cf.attrs["validity_rate"],
             cf.attrs["validity_rate_misclassified"], cf.attrs["mean_proximity_l1"], cf.attrs["mean_gan_proximity_l1"],
             cf.attrs["mean_alpha"], cf.attrs["mean_nn_distance"])
config = {**cfg, "pool": "train split"}
write_dataset(cf, out.counterfactuals, step="counterfactuals", config=config, seed=p.seed)
with atomic_path(out.table) as tmp:
    counterfactual_table(cf).to_csv(tmp)
wachter = open_result(inp.wachter)
methods = methods_table_of(cf, wachter)
logging.info("CARLA's metrics per method:\n%s", methods.to_string(float_format=lambda v: f"{v:.3f}"))
with atomic_path(out.methods) as tmp:
    methods.to_csv(tmp)

t0 = time.time()
cmp = tracer_comparison(model, torch.as_tensor(cf["original_inputs"].values),
                        torch.as_tensor(cf["counterfactual_inputs"].values), tracer, sample_ids=cf["sample"].values,
                        device=device, progress=True)
cmp = cmp.assign_coords(kind=("sample", cf["kind"].values))
logging.info("TRACER on %d originals and counterfactuals in %.1f s", cmp.sizes["sample"], time.time() - t0)
write_dataset(cmp, out.tracer, step="counterfactual_tracer",
              config={**p.tracer, "layers": observed_layers(model, tracer.layers)}, seed=p.seed)
plot_counterfactuals(cf, cmp, out.figure, max_samples=settings.figure_samples, wachter_ds=wachter)
