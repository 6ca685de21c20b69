# The model zoo: trained here many-models-at-once (source: train) or the real Small CNN
# Zoo downloaded and verified (source: smallcnnzoo). Both write the same zoo.nc contract.

if config["zoo"]["source"] == "train":

    rule zoo_train:
        input:
            dataset="results/{dataset}/dataset.nc",
            code=package_code("zoo_train.py"),
        output:
            zoo="results/{dataset}/zoo.nc",
        params:
            train=zoo_train_params,
        threads: 8  # capped at --cores; torch uses them for the grouped convolutions
        resources:
            gpu=1,
        log:
            "logs/{dataset}/zoo.log",
        benchmark:
            "results/benchmarks/{dataset}/zoo.tsv"
        conda:
            "../../envs/causalxai.yaml"
        script:
            "../scripts/zoo_train.py"

else:

    rule zoo_smallcnnzoo:
        input:
            code=package_code("zoo_smallcnnzoo.py"),
        output:
            zoo="results/{dataset}/zoo.nc",
        params:
            cache_dir=config["data"]["cache_dir"],
            download=smallcnnzoo_params,
        log:
            "logs/{dataset}/zoo.log",
        benchmark:
            "results/benchmarks/{dataset}/zoo.tsv"
        conda:
            "../../envs/causalxai.yaml"
        script:
            "../scripts/zoo_smallcnnzoo.py"
