# Treatment effects of each hyperparameter on predictions and explanations, per accuracy
# bucket, their correlations, and the direct versus mediated split (paper 000 eq. 4,
# Fig. 2-4). The figures are a separate rule: restyling them never re-runs the estimates.


rule effects:
    input:
        unpack(effects_inputs),
        code=package_code("effects.py"),
    output:
        effects="results/{dataset}/effects.nc",
    params:
        kernel=config["effects"]["kernel"],
        cap=config["effects"]["max_models_per_group"],
        methods=config["explain"]["methods"],
        seed=config["seed"],
    threads: 8
    log:
        "logs/{dataset}/effects.log",
    benchmark:
        "results/benchmarks/{dataset}/effects.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/effects.py"


rule effect_figures:
    input:
        effects="results/{dataset}/effects.nc",
        code=package_code("effect_figures.py"),
    output:
        correlations=report(
            "results/{dataset}/figures/effect_correlations.png",
            caption="../report/effect_correlations.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
        ite_by_bucket=report(
            "results/{dataset}/figures/ite_by_bucket.png",
            caption="../report/ite_by_bucket.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
        scatter=report(
            "results/{dataset}/figures/ite_scatter.png",
            caption="../report/ite_scatter.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
        mediation=report(
            "results/{dataset}/figures/mediation.png",
            caption="../report/mediation.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
    params:
        hparam="optimizer",
        stat="pearson",
    log:
        "logs/{dataset}/effect_figures.log",
    benchmark:
        "results/benchmarks/{dataset}/effect_figures.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/effect_figures.py"
