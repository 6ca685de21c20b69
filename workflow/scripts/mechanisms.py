"""Rule mechanisms: distinct causal mechanisms over the analysed samples and their coverage (App. E), with their
stability: an ε-neighbourhood report, a bootstrap over the samples and the near-threshold layer pairs."""

import logging

import xarray as xr

from causalxai.io import atomic_path, open as open_result, write_dataset
from causalxai.tracer.mechanisms import mechanisms_dataset
from causalxai.tracer.settings import MechanismSettings
from causalxai.tracer.stability import stability_dataset, stability_table

from common import start

start(snakemake)

p = snakemake.params
settings = MechanismSettings.from_params({**p.mechanisms, "seed": p.seed})
inter = open_result(snakemake.input.interventions)
nodes = open_result(snakemake.input.nodes)
eps = float(nodes.attrs["eps"])
mech = mechanisms_dataset(nodes["group"], inter["label"].values)
stab = stability_dataset(nodes["cka"], eps, settings)
ds = xr.merge([mech, stab], combine_attrs="drop").assign_attrs({**mech.attrs, **stab.attrs})
logging.info("%d distinct mechanisms over %d samples", ds.sizes["mechanism"], nodes.sizes["sample"])
table = ds[["n_nodes", "n_intermediate", "composition", "n_samples", "share", "coverage"]].to_dataframe()
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp)
stability = stability_table(stab)
for row in stability.itertuples():
    logging.info("eps %.4f: %d mechanisms, dominant share %.3f", row.eps, row.n_mechanisms, row.dominant_share)
with atomic_path(snakemake.output.stability) as tmp:
    stability.to_csv(tmp, index=False)
write_dataset(ds, snakemake.output.mechanisms, step="mechanisms", config={"eps": eps, **dict(p.mechanisms)},
              seed=p.seed)
