# Meta-model (paper 000 App. A.2): a 3-layer MLP that predicts each base model's predicted
# class from (probe image, hyperparameters), trained on a share of the zoo's models and
# evaluated on the others, for all models and for the top models by test accuracy.


rule meta_model:
    input:
        zoo="results/{dataset}/zoo.nc",
        images="results/{dataset}/images.nc",
        predictions="results/{dataset}/predictions.nc",
        code=package_code("meta_model.py"),
    output:
        meta_model="results/{dataset}/meta_model.nc",
    params:
        meta_model=config["meta_model"],
        seed=config["seed"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/meta_model.log",
    benchmark:
        "results/benchmarks/{dataset}/meta_model.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/meta_model.py"
