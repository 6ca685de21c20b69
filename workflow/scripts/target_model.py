"""Rule target_model: train the classifier TRACER explains; weights, summary and layer table."""

import logging
import time

from causalxai.io import atomic_path, open as open_result, write_dataset
from causalxai.tracer.settings import ClassifierSettings
from causalxai.tracer.target_model import (
    is_torchscript,
    load_pretrained_target,
    load_torchscript_target,
    load_trained_target,
    save_target_model,
    train_target_model,
)

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
out = snakemake.output
cfg = dict(p.model)
device = snakemake.config["device"]  # not a param: changing it re-runs nothing
weights = cfg.pop("weights", None)
pretrained = cfg.pop("pretrained", False)
settings = ClassifierSettings.from_params({**cfg, "seed": p.seed}, section="tracer.model")
t0 = time.time()
dataset = open_result(snakemake.input.dataset)
if weights is not None and is_torchscript(weights):  # a TorchScript model (tracer.model.weights): loaded as it is
    model, kwargs, ds = load_torchscript_target(dataset, weights)
    cfg.update(weights=weights, architecture="torchscript")
elif weights is not None:  # the user's trained weights (tracer.model.weights): loaded, not trained
    model, kwargs, ds = load_trained_target(dataset, settings, weights)
    cfg["weights"] = weights
elif pretrained:  # a factory returning a trained model (tracer.model.pretrained)
    model, kwargs, ds = load_pretrained_target(dataset, settings)
    cfg["pretrained"] = True
else:
    model, kwargs, ds = train_target_model(dataset, settings, device=device, progress=True)
logging.info("%s: test accuracy %.4f, %d parameters, %s in %.1f s", cfg["architecture"], float(ds["test_accuracy"]),
             int(ds["n_params"]), ds.attrs["trained"], time.time() - t0)
save_target_model(model, cfg["architecture"], kwargs, out.weights)
table = ds[["layer_type", "output_shape", "n_outputs", "n_params_layer"]].to_dataframe()
with atomic_path(out.layers) as tmp:
    table.to_csv(tmp)
write_dataset(ds, out.summary, step="target_model", config={**cfg, "device": device}, seed=p.seed)
