"""Rule mechanisms: distinct causal mechanisms over the analysed samples and their coverage (App. E)."""

import logging

from causalxai.io import atomic_path, open as open_result, write_dataset
from causalxai.tracer.mechanisms import mechanisms_dataset

from common import start

start(snakemake)

inter = open_result(snakemake.input.interventions)
nodes = open_result(snakemake.input.nodes)
ds = mechanisms_dataset(nodes["group"], inter["label"].values)
logging.info("%d distinct mechanisms over %d samples", ds.sizes["mechanism"], nodes.sizes["sample"])
table = ds[["n_nodes", "composition", "n_samples", "share", "coverage"]].to_dataframe()
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp)
write_dataset(ds, snakemake.output.mechanisms, step="mechanisms", config={"eps": nodes.attrs["eps"]},
              seed=inter.attrs.get("seed"))  # deterministic step: the interventions' seed
