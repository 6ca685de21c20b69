# Predictions and saliency maps of every zoo model on the probe images (paper 000 §3.1,
# App. A.3). Each method's maps are computed in `explain.shards` model ranges by separate
# jobs (GPU jobs on a cluster), Snakemake's scatter items 1-of-n ... n-of-n, and gathered
# into one file per method.


scattergather:
    explain=config["explain"]["shards"],


wildcard_constraints:
    method="|".join(dict.fromkeys([*BUILTINS["explain.methods"], *EXPLAIN_METHODS])),


rule predictions:
    input:
        zoo="results/{dataset}/zoo.nc",
        images="results/{dataset}/images.nc",
        code=package_code("predictions.py"),
    output:
        predictions="results/{dataset}/predictions.nc",
    params:
        explain=explain_common_params,
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/predictions.log",
    benchmark:
        "results/benchmarks/{dataset}/predictions.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/predictions.py"


rule explain_shard:
    input:
        zoo="results/{dataset}/zoo.nc",
        images="results/{dataset}/images.nc",
        predictions="results/{dataset}/predictions.nc",
        code=package_code("explain_shard.py"),
    output:
        shard="results/{dataset}/explanations/shards/{method}.{scatteritem}.nc",
    params:
        explain=explain_method_params,
        shard=explain_shard_index,
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/explain/{method}.{scatteritem}.log",
    benchmark:
        "results/benchmarks/{dataset}/explain/{method}.{scatteritem}.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/explain_shard.py"


rule explain_gather:
    input:
        shards=gather.explain("results/{{dataset}}/explanations/shards/{{method}}.{scatteritem}.nc"),
        code=package_code("explain_gather.py"),
    output:
        explanations="results/{dataset}/explanations/{method}.nc",
    params:
        explain=explain_gather_params,
    log:
        "logs/{dataset}/explain/{method}.gather.log",
    benchmark:
        "results/benchmarks/{dataset}/explain/{method}.gather.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/explain_gather.py"


rule prediction_figure:
    input:
        predictions="results/{dataset}/predictions.nc",
        zoo="results/{dataset}/zoo.nc",
        images="results/{dataset}/images.nc",
        code=package_code("prediction_figure.py"),
    output:
        figure=report(
            "results/{dataset}/figures/predictions_by_optimizer.png",
            caption="../report/predictions_by_optimizer.rst",
            category="Model-zoo study",
            subcategory="2 explanations ({dataset})",
        ),
    params:
        hparam="optimizer",
    log:
        "logs/{dataset}/prediction_figure.log",
    benchmark:
        "results/benchmarks/{dataset}/prediction_figure.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/prediction_figure.py"
