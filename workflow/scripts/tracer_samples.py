"""Rule tracer_samples: the class-balanced test samples of TRACER's interventions and reliability steps."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.samples import tracer_samples  # noqa: E402
from causalxai.tracer.target_model import dataset_tensors  # noqa: E402

p = snakemake.params  # noqa: F821
_, y = dataset_tensors(open_result(snakemake.input.dataset), "test")  # noqa: F821
ds = tracer_samples(y.numpy(), p.n_samples, p.reliability_n_samples, p.seed)
logging.info("%d interventions samples (seed %d), %d reliability samples (seed %d)", ds.sizes["interventions_sample"],
             ds.attrs["seed_interventions"], ds.sizes["reliability_sample"], ds.attrs["seed_reliability"])
write_dataset(ds, snakemake.output.samples, step="tracer_samples",  # noqa: F821
              config={"n_samples": p.n_samples, "reliability_n_samples": p.reliability_n_samples}, seed=p.seed)
