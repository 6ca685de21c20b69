"""Rule wachter_counterfactuals: the Wachter et al. (2017) search, the baseline beside the counterfactual GAN of
paper 004 §3.5, on the same test samples and targets, with the same metrics."""

import logging

from causalxai.counterfactual.counterfactuals import select_samples
from causalxai.counterfactual.wachter import WachterSettings, wachter_counterfactuals
from causalxai.io import open as open_result, write_dataset
from causalxai.runtime import resolve_device
from causalxai.tracer.target_model import dataset_tensors, load_target_model

from common import start

start(snakemake, torch_threads=True)

p, inp, out = snakemake.params, snakemake.input, snakemake.output
cfg, samples_cfg = dict(p.wachter), dict(p.samples)
settings = WachterSettings.from_params(cfg)
device = resolve_device(snakemake.config["device"])  # not a param: changing it re-runs nothing
model = load_target_model(inp.weights)
data = open_result(inp.dataset)
x_train, y_train = dataset_tensors(data, "train")
x, y = dataset_tensors(data, "test")
# the counterfactuals rule's samples and targets: the same selection, settings and seed
sel = select_samples(model, x, y, samples_cfg["n_correct"], p.seed, n_misclassified=samples_cfg["n_misclassified"])
ds = wachter_counterfactuals(model, x[sel["index"]], sel, settings, pool=(x_train, y_train),
                             ynn_k=samples_cfg["ynn_k"], sparsity_tol=samples_cfg["sparsity_tol"], device=device)
ds["sample"].attrs["description"] = "index of the sample among the dataset's test split"
logging.info("%d Wachter counterfactuals, %.3f s each: validity %.3f, proximity l1 %.1f, l0 %.1f, linf %.2f, "
             "yNN %.2f, redundancy %.1f", ds.sizes["sample"], ds.attrs["seconds_per_counterfactual"],
             ds.attrs["validity_rate"], ds.attrs["mean_proximity_l1"], ds.attrs["mean_l0"], ds.attrs["mean_linf"],
             ds.attrs["mean_ynn"], ds.attrs["mean_redundancy"])
write_dataset(ds, out.counterfactuals, step="wachter_counterfactuals",
              config={**cfg, **samples_cfg, "pool": "train split"}, seed=p.seed)
