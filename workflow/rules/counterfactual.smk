# Counterfactuals (paper 004 §3.5, App. C, F): a conditional autoencoder-GAN trained against the
# target model, counterfactuals of the misclassified test samples, and TRACER on both versions;
# the Wachter et al. (2017) search as the baseline, compared on CARLA's metrics.


rule counterfactual_gan:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        dataset="results/{dataset}/dataset.nc",
        code=package_code("counterfactual_gan.py"),
    output:
        weights="results/{dataset}/tracer/counterfactual_gan.pt",
        history="results/{dataset}/tracer/counterfactual_gan.nc",
    params:
        gan=config["tracer"]["counterfactual_gan"],
        seed=config["seed"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/counterfactual_gan.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/counterfactual_gan.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/counterfactual_gan.py"


rule wachter_counterfactuals:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        dataset="results/{dataset}/dataset.nc",
        code=package_code("wachter_counterfactuals.py"),
    output:
        counterfactuals="results/{dataset}/tracer/wachter_counterfactuals.nc",
    params:
        wachter=config["tracer"]["wachter"],
        samples={
            k: config["tracer"]["counterfactuals"][k]
            for k in ("n_correct", "n_misclassified", "sparsity_tol", "ynn_k")
        },
        seed=config["seed"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/wachter_counterfactuals.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/wachter_counterfactuals.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/wachter_counterfactuals.py"


rule counterfactuals:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        gan="results/{dataset}/tracer/counterfactual_gan.pt",
        dataset="results/{dataset}/dataset.nc",
        wachter="results/{dataset}/tracer/wachter_counterfactuals.nc",
        code=package_code("counterfactuals.py"),
    output:
        counterfactuals="results/{dataset}/tracer/counterfactuals.nc",
        tracer="results/{dataset}/tracer/counterfactual_tracer.nc",
        table=report(
            "results/{dataset}/tables/counterfactuals.csv",
            caption="../report/counterfactuals.rst",
            category="TRACER",
            subcategory="5 counterfactuals ({dataset})",
        ),
        methods=report(
            "results/{dataset}/tables/counterfactual_methods.csv",
            caption="../report/counterfactual_methods.rst",
            category="TRACER",
            subcategory="5 counterfactuals ({dataset})",
        ),
        figure=report(
            "results/{dataset}/figures/tracer/counterfactuals.png",
            caption="../report/counterfactuals.rst",
            category="TRACER",
            subcategory="5 counterfactuals ({dataset})",
        ),
    params:
        counterfactuals=config["tracer"]["counterfactuals"],
        tracer=tracer_params("layers", "patch", "stride", "baseline", "kernel", "eps", "mask_threshold"),
        seed=config["seed"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/counterfactuals.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/counterfactuals.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/counterfactuals.py"
