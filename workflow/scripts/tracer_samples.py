"""Rule tracer_samples: the class-balanced test samples of TRACER's interventions and reliability steps."""

import logging

from causalxai.io import open as open_result, write_dataset
from causalxai.tracer.samples import tracer_samples
from causalxai.tracer.target_model import dataset_tensors

from common import provenance, start

start(snakemake)

p = snakemake.params
_, y = dataset_tensors(open_result(snakemake.input.dataset), "test")
ds = tracer_samples(y.numpy(), p.n_samples, p.reliability_n_samples, p.seed)
logging.info("%d interventions samples (seed %d), %d reliability samples (seed %d)", ds.sizes["interventions_sample"],
             ds.attrs["seed_interventions"], ds.sizes["reliability_sample"], ds.attrs["seed_reliability"])
write_dataset(ds, snakemake.output.samples, step="tracer_samples", **provenance(snakemake))
