"""Rule buckets: accuracy-percentile buckets, their boundary table and figure."""

from causalxai.io import atomic_path, write_dataset
from causalxai.plots.buckets import plot_accuracy_buckets
from causalxai.study.buckets import make_buckets
from causalxai.zoo.dataset import open_hparams

from common import provenance, start

start(snakemake)

p = snakemake.params
zoo = open_hparams(snakemake.input.zoo)  # no weights
buckets = make_buckets(zoo, p.edges, p.metric, seed=p.seed)
table = buckets.drop_dims("model").to_dataframe().reset_index()
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, index=False)
plot_accuracy_buckets(buckets, snakemake.output.figure)
# the seed breaks ties in accuracy (and is the one the zoo was made with)
write_dataset(buckets, snakemake.output.buckets, step="buckets", **provenance(snakemake))
