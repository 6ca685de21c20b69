"""Rule buckets: accuracy-percentile buckets, their boundary table and figure."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.io import atomic_path, open as open_result, write_dataset  # noqa: E402
from causalxai.plots.buckets import plot_accuracy_buckets  # noqa: E402
from causalxai.study.buckets import make_buckets  # noqa: E402

p = snakemake.params  # noqa: F821
zoo = open_result(snakemake.input.zoo)  # noqa: F821
buckets = make_buckets(zoo, p.edges, p.metric, seed=p.seed)
table = buckets.drop_dims("model").to_dataframe().reset_index()
with atomic_path(snakemake.output.table) as tmp:  # noqa: F821
    table.to_csv(tmp, index=False)
plot_accuracy_buckets(buckets, snakemake.output.figure)  # noqa: F821
# the seed breaks ties in accuracy (and is the one the zoo was made with)
write_dataset(buckets, snakemake.output.buckets, step="buckets", config={"edges": p.edges, "metric": p.metric},  # noqa: F821
              seed=p.seed)
