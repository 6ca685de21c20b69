"""Rule zoo_source: a zoo of any architecture, read from a folder of state dicts and a CSV
(zoo.source: checkpoints) or from a Model Zoo of Schürholt et al. (zoo.source: modelzoos).
Everything is read and checked before zoo.nc is written."""

from causalxai.io import open as open_result, write_dataset
from causalxai.zoo.checkpoints import load_checkpoints_zoo
from causalxai.zoo.modelzoos import load_modelzoo

from common import start

start(snakemake, torch_threads=True)

p = snakemake.params
dataset = snakemake.wildcards.dataset
if p.source == "checkpoints":
    zoo = load_checkpoints_zoo(p.zoo, open_result(snakemake.input.dataset), dataset_name=dataset)
else:
    zoo = load_modelzoo(p.zoo, dataset_name=dataset)
write_dataset(zoo, snakemake.output.zoo, step="zoo", config={"source": p.source, **p.zoo}, seed=0)
