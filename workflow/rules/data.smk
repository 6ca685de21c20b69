# Image sets and the probe images every later step explains.


rule dataset:
    input:
        code=package_code("dataset.py"),
    output:
        dataset="results/{dataset}/dataset.nc",
    params:
        name="{dataset}",
        cache_dir=config["data"]["cache_dir"],
        options=dataset_params,
    log:
        "logs/{dataset}/dataset.log",
    benchmark:
        "results/benchmarks/{dataset}/dataset.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/dataset.py"


rule images:
    input:
        dataset="results/{dataset}/dataset.nc",
        code=package_code("images.py"),
    output:
        images="results/{dataset}/images.nc",
    params:
        n_images=config["images"]["n_images"],
        seed=config["seed"],
    log:
        "logs/{dataset}/images.log",
    benchmark:
        "results/benchmarks/{dataset}/images.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/images.py"
