"""Rule compress: compressed models from the mechanisms' causal nodes, their matched controls and the
paper's Table 2 models, retrained over seeds and measured (paper 004 §4.3, Tables 1-2; issue 16)."""

import logging
import time

import pandas as pd

from causalxai.compress.build import compress_skip_reason, save_compressed_models, skipped_compression
from causalxai.compress.compress import CompressSettings, compress_dataset, compress_table
from causalxai.compress.controls import random_weight_mechanisms
from causalxai.io import atomic_path, open as open_result, write_dataset
from causalxai.plots.compress import plot_compression, plot_compression_skipped
from causalxai.runtime import resolve_device
from causalxai.tracer.model import observed_layers
from causalxai.tracer.settings import TracerSettings
from causalxai.tracer.target_model import dataset_tensors, load_target_model, target_checkpoint

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
out = snakemake.output
cfg = dict(p.compress)
# inputs per forward pass and device: read from the config, not params (changing them re-runs nothing)
batch_size = snakemake.config["tracer"]["interventions"]["batch_size"]
device = snakemake.config["device"]
tracer = TracerSettings.from_params({**p.tracer, "batch_size": batch_size})
settings = CompressSettings.from_params({**cfg, "seed": p.seed})
model = load_target_model(snakemake.input.weights)
ckpt = target_checkpoint(snakemake.input.weights)  # architecture, kwargs
data = open_result(snakemake.input.dataset)
mech = open_result(snakemake.input.mechanisms)
layers = observed_layers(model, p.layers if isinstance(p.layers, str) else list(p.layers))
if [str(v) for v in mech["layer"].values] != layers:
    raise ValueError(f"{snakemake.input.mechanisms}: its layers {mech['layer'].values.tolist()} are not the observed "
                     f"layers {layers} of tracer.layers; re-run the TRACER steps")
t0 = time.time()
x_test, y_test = dataset_tensors(data, "test")
skip = compress_skip_reason(model, layers, tuple(x_test.shape[1:]))
if skip:  # a target compress cannot rebuild (a residual network): the reason is the step's result
    logging.warning("compress skipped: %s", skip)
    shape = tuple(x_test.shape[1:])
    save_compressed_models(out.models, {}, {}, architecture=ckpt["architecture"], kwargs=dict(ckpt["kwargs"]),
                           input_shape=shape)
    for table in (out.table_models, out.table_layers):
        with atomic_path(table) as tmp:
            pd.DataFrame({"skipped": [skip]}).to_csv(tmp, index=False)
    plot_compression_skipped(skip, out.figure)
    write_dataset(skipped_compression(skip, shape), out.compress, step="compress", seed=p.seed,
                  config={**cfg, "layers": layers, "device": device})
    raise SystemExit(0)  # nothing else to do
random_mech = None
if settings.random_weights:
    idx = open_result(snakemake.input.samples)["interventions"].values[: settings.random_weights_samples]
    random_mech = random_weight_mechanisms(model, x_test[idx], tracer, seed=p.seed,
                                           labels=y_test[idx].numpy(), sample_ids=idx,
                                           device=resolve_device(device), progress=True)
    logging.info("random-weight copy, %d samples: mechanisms\n%s (%.1f s)", idx.size,
                 random_mech[["composition", "coverage"]].to_dataframe().to_string(), time.time() - t0)
ds, models = compress_dataset(model, mech, dataset_tensors(data, "train"), (x_test, y_test), settings,
                              random_mechanisms=random_mech, dropout=float(dict(ckpt["kwargs"]).get("dropout", 0.5)),
                              device=device, threads=snakemake.threads, progress=True)
for note in ds.attrs["notes"]:
    if note:
        logging.warning("compress: %s", note)
table = compress_table(ds)
logging.info("compressed models in %.1f s:\n%s", time.time() - t0, table.drop(columns="composition").to_string())
compositions = {str(n): str(c) for n, c, k in zip(ds["model"].values, ds["composition"].values, ds["kind"].values)
                if k == "tracer"}
save_compressed_models(
    out.models, {n: models[n] for n in compositions}, compositions,
    architecture=ckpt["architecture"], kwargs=dict(ckpt["kwargs"]), input_shape=ds.attrs["input_shape"],
)
with atomic_path(out.table_models) as tmp:
    table.to_csv(tmp)
layer_vars = ["layer_name", "layer_type", "layer_output_shape", "layer_params"]
layers_df = ds[layer_vars].to_dataframe().reset_index()
layers_df = layers_df[layers_df["layer_name"] != ""].rename(
    columns=lambda c: c.removeprefix("layer_") if c != "layer_index" else c
)
with atomic_path(out.table_layers) as tmp:
    layers_df.to_csv(tmp, index=False)
plot_compression(ds, out.figure)
write_dataset(ds, out.compress, step="compress", seed=p.seed,
              config={**cfg, "random_weights_tracer": dict(p.tracer), "layers": layers, "device": device})
