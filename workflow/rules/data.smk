# Image sets and the probe images every later step explains.


# One file of an image set, downloaded into data.cache_dir (resumable, MD5-verified): a local
# rule, so that on a cluster the download runs on the login node and rule dataset, a compute
# job, reads local files only. No code input: editing the package does not download again.
rule download_images:
    output:
        file=os.path.join(CACHE_DIR, "{dataset}", "{file}"),
    params:
        source=image_download_params,
    localrule: True
    wildcard_constraints:
        dataset="|".join(DOWNLOADED_SETS),
        file="|".join(map(re.escape, IMAGE_FILES)),
    log:
        "logs/downloads/{dataset}/{file}.log",
    benchmark:
        "results/benchmarks/downloads/{dataset}/{file}.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/download_images.py"


rule dataset:
    input:
        downloads=image_downloads,
        custom=custom_data_inputs,
        code=package_code("dataset.py"),
    output:
        dataset="results/{dataset}/dataset.nc",
    params:
        name="{dataset}",
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
