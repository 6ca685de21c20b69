# causal-xai: how far do a neural network's explanations reflect its predictions?
# Run the embedded default (offline, CPU):   snakemake --cores 2
# At the papers' scale on a SLURM cluster:   snakemake --configfile config/paper.yaml --profile workflow/profiles/slurm
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, os.path.join(workflow.basedir, "config", "schema.yaml"), set_default=True)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/zoo.smk"
include: "workflow/rules/buckets.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/effects.smk"
include: "workflow/rules/meta_model.smk"
include: "workflow/rules/tracer.smk"
include: "workflow/rules/counterfactual.smk"
include: "workflow/rules/compress.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
