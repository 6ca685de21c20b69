"""Rule mechanisms: distinct causal mechanisms over the analysed samples and their coverage (App. E)."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import atomic_path, open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.mechanisms import mechanisms_dataset  # noqa: E402

inter = open_result(snakemake.input.interventions)  # noqa: F821
nodes = open_result(snakemake.input.nodes)  # noqa: F821
ds = mechanisms_dataset(nodes["group"], inter["label"].values)
logging.info("%d distinct mechanisms over %d samples", ds.sizes["mechanism"], nodes.sizes["sample"])
table = ds[["n_nodes", "composition", "n_samples", "share", "coverage"]].to_dataframe()
with atomic_path(snakemake.output.table) as tmp:  # noqa: F821
    table.to_csv(tmp)
write_dataset(ds, snakemake.output.mechanisms, step="mechanisms", config={"eps": nodes.attrs["eps"]},  # noqa: F821
              seed=inter.attrs.get("seed"))  # deterministic step: the interventions' seed
