# causal-xai: how far do a neural network's explanations reflect its predictions?
# Run the embedded default (offline, CPU):   snakemake --cores 2
# At the papers' scale on a SLURM cluster:   snakemake --configfile config/paper.yaml --profile workflow/profiles/slurm
#
# The workflow itself is workflow/Snakefile, where snakedeploy and the workflow catalog look for it.
# It is included here as the main Snakefile would be: its `rule all` stays the default target (a
# plain `include:` keeps the including file's default target).
workflow.include("workflow/Snakefile", overwrite_default_target=True)
