# The model zoo: trained here many-models-at-once (source: train), the real Small CNN Zoo
# downloaded and verified (source: smallcnnzoo), a user's folder of state dicts of any architecture
# (source: checkpoints) or a zoo of Schürholt et al.'s Model Zoos (source: modelzoos). All write
# the zoo.nc contract (causalxai.zoo.dataset; any architecture: causalxai.zoo.forward).

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

elif config["zoo"]["source"] in ("checkpoints", "modelzoos"):

    rule zoo_source:
        input:
            dataset="results/{dataset}/dataset.nc",
            files=zoo_source_files,
            code=package_code("zoo_source.py"),
        output:
            zoo="results/{dataset}/zoo.nc",
        params:
            source=config["zoo"]["source"],
            zoo=zoo_source_params,
        log:
            "logs/{dataset}/zoo.log",
        benchmark:
            "results/benchmarks/{dataset}/zoo.tsv"
        conda:
            "../../envs/causalxai.yaml"
        script:
            "../scripts/zoo_source.py"

else:

    # The zoo's archive, downloaded into data.cache_dir (resumable; SHA-256-verified when
    # zoo.smallcnnzoo.sha256 pins it): a local rule, so that on a cluster the download runs on
    # the login node and rule zoo_smallcnnzoo, a compute job, reads the local archive only.
    rule download_zoo:
        output:
            archive=os.path.join(CACHE_DIR, "{dataset}.tar.xz"),
        params:
            download=zoo_download_params,
        localrule: True
        wildcard_constraints:
            dataset="|".join(ZOO_DATASETS),
        log:
            "logs/downloads/{dataset}.tar.xz.log",
        benchmark:
            "results/benchmarks/downloads/{dataset}.tar.xz.tsv"
        conda:
            "../../envs/causalxai.yaml"
        script:
            "../scripts/download_zoo.py"

    rule zoo_smallcnnzoo:
        input:
            archive=zoo_archive,
            code=package_code("zoo_smallcnnzoo.py"),
        output:
            zoo="results/{dataset}/zoo.nc",
        params:
            download=smallcnnzoo_params,
        log:
            "logs/{dataset}/zoo.log",
        benchmark:
            "results/benchmarks/{dataset}/zoo.tsv"
        conda:
            "../../envs/causalxai.yaml"
        script:
            "../scripts/zoo_smallcnnzoo.py"
