# Treatment effects of each hyperparameter on predictions and explanations, per accuracy
# bucket, their correlations, and the direct versus mediated split (paper 000 eq. 4,
# Fig. 2-4). The figures are a separate rule: restyling them never re-runs the estimates.


rule effects:
    input:
        unpack(effects_inputs),
        code=package_code("effects.py"),
    output:
        effects="results/{dataset}/effects.nc",
        cate=report(
            "results/{dataset}/tables/effects_cate.csv",
            caption="../report/effects_cate.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
        ate=report(
            "results/{dataset}/tables/effects_ate.csv",
            caption="../report/effects_ate.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
    params:
        effects=effects_params,
        methods=list(EXPLAIN_METHODS),
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
        ite_by_hparam=report(
            "results/{dataset}/figures/ite_by_hparam.png",
            caption="../report/ite_by_hparam.rst",
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
        hparam=config["effects"]["figures"]["hparam"],
        aggregation=config["effects"]["aggregation"],
    log:
        "logs/{dataset}/effect_figures.log",
    benchmark:
        "results/benchmarks/{dataset}/effect_figures.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/effect_figures.py"


rule effects_sensitivity:
    input:
        unpack(sensitivity_inputs),
        code=package_code("effects_sensitivity.py"),
    output:
        table=report(
            "results/{dataset}/tables/effects_sensitivity.csv",
            caption="../report/effects_sensitivity_table.rst",
            category="Model-zoo study",
            subcategory="4 sensitivity ({dataset})",
        ),
        figure=report(
            "results/{dataset}/figures/effects_sensitivity.png",
            caption="../report/effects_sensitivity.rst",
            category="Model-zoo study",
            subcategory="4 sensitivity ({dataset})",
        ),
    params:
        effects=effects_params,
        explain=lambda wildcards: {k: config["explain"][k] for k in ("clip_percentile", "zero_maps")},
        sensitivity=config["effects"]["sensitivity"],
        methods=list(EXPLAIN_METHODS),
    threads: 8
    log:
        "logs/{dataset}/effects_sensitivity.log",
    benchmark:
        "results/benchmarks/{dataset}/effects_sensitivity.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/effects_sensitivity.py"


rule kernel_figures:
    input:
        unpack(effects_inputs),
        images="results/{dataset}/images.nc",
        code=package_code("kernel_figures.py"),
    output:
        heatmaps=report(
            "results/{dataset}/figures/kernel_heatmaps.png",
            caption="../report/kernel_heatmaps.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
        comparison=report(
            "results/{dataset}/figures/kernel_comparison.png",
            caption="../report/kernel_comparison.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects ({dataset})",
        ),
    params:
        methods=list(EXPLAIN_METHODS),
        fig7=config["effects"]["figures"]["kernel_example"],
        fig8_hparam=config["effects"]["figures"]["kernel_comparison"],
        cap=config["effects"]["max_models_per_group"],
        log_rounding=config["effects"]["log_rounding"],
        seed=config["seed"],
    log:
        "logs/{dataset}/kernel_figures.log",
    benchmark:
        "results/benchmarks/{dataset}/kernel_figures.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/kernel_figures.py"


rule effect_datasets_figure:
    input:
        effects=expand("results/{dataset}/effects.nc", dataset=DATASETS),
        code=package_code("effect_datasets_figure.py"),
    output:
        figure=report(
            "results/figures/effect_correlations_by_dataset.png",
            caption="../report/effect_correlations_by_dataset.rst",
            category="Model-zoo study",
            subcategory="3 treatment effects (all data sets)",
        ),
    params:
        datasets=DATASETS,
        aggregation=config["effects"]["aggregation"],
    log:
        "logs/effect_datasets_figure.log",
    benchmark:
        "results/benchmarks/effect_datasets_figure.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/effect_datasets_figure.py"
