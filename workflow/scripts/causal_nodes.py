"""Rule causal_nodes: causal nodes (Def. 3), links (Def. 4) and the eps sweep (App. G) per sample."""
import logging
import sys
import time
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import open as open_result, write_dataset  # noqa: E402
from causalxai.tracer.nodes import causal_nodes_dataset  # noqa: E402
from causalxai.tracer.settings import TracerSettings  # noqa: E402

p = snakemake.params  # noqa: F821
settings = TracerSettings.from_params(p.tracer)
inter = open_result(snakemake.input.interventions)  # noqa: F821
ds = causal_nodes_dataset(inter["cka"], settings)
logging.info("eps %g: causal nodes per sample min %d, max %d", settings.eps, int(ds["n_groups"].min()),
             int(ds["n_groups"].max()))
write_dataset(ds, snakemake.output.nodes, step="causal_nodes", config=dict(p.tracer),  # noqa: F821
              seed=inter.attrs.get("seed"))  # deterministic step: the interventions' seed
