# Treatment effects of each hyperparameter on predictions and explanations, per accuracy
# bucket, and how they correlate (paper 000 eq. 4, Fig. 2-3).


rule effects:
    input:
        unpack(effects_inputs),
    output:
        effects="results/{dataset}/effects.nc",
        figure=report(
            "results/{dataset}/figures/effect_correlations.png",
            caption="../report/effect_correlations.rst",
            category="Model zoo",
            subcategory="{dataset}",
        ),
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
