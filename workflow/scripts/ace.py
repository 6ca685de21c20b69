"""Rule ace: average causal effect per causal node (Def. 5), feature attributions, explanation masks, and the
nodes' causal validation: ablation of each node, its agreement with ACE, and the top units (App. B)."""

import logging

from causalxai.io import open as open_result, write_dataset
from causalxai.runtime import resolve_device
from causalxai.tracer.ablation import ace_ablation_agreement, node_validation_dataset
from causalxai.tracer.ace import ace_dataset
from causalxai.tracer.settings import TracerSettings
from causalxai.tracer.target_model import load_target_model

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
# inputs per forward pass and device: read from the config, not params (changing them re-runs nothing)
cfg = {**p.tracer, "batch_size": snakemake.config["tracer"]["interventions"]["batch_size"]}
settings = TracerSettings.from_params(cfg)
inter = open_result(snakemake.input.interventions)
nodes = open_result(snakemake.input.nodes)
ds = ace_dataset(inter, nodes["group"], settings)
logging.info("ACE of %d samples; mean mask share %.3f", ds.sizes["sample"], float(ds["mask"].mean()))
model = load_target_model(snakemake.input.weights).to(resolve_device(snakemake.config["device"]))
validation = node_validation_dataset(model, inter, nodes["group"], settings, progress=True)
agreement = ace_ablation_agreement(ds["ace"], validation["ablation_kl"])
ds = ds.merge(validation, combine_attrs="override").merge(agreement, combine_attrs="override")
ds.attrs.update(validation.attrs)
for name in ds["ablation"].values:
    one = ds.sel(ablation=name)
    logging.info("node ablation to the mean over the %s: %.1f %% of nodes flip the prediction; Spearman(|ACE|, "
                 "ablation KL) pooled %.3f, per-sample median %.3f", name,
                 100 * float(one["ablation_flip"].where(ds["ace"].notnull()).mean()),
                 float(one["ace_ablation_spearman_pooled"]), float(one["ace_ablation_spearman"].median()))
write_dataset(ds, snakemake.output.ace, step="ace", config=cfg, seed=inter.attrs.get("seed"))  # the interventions' seed
