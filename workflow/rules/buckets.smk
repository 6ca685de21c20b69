# Percentile buckets of the zoo's test accuracy (paper 000 §3.2, Table 2).


rule buckets:
    input:
        zoo="results/{dataset}/zoo.nc",
        code=package_code("buckets.py"),
    output:
        buckets="results/{dataset}/buckets.nc",
        table=report(
            "results/{dataset}/tables/buckets.csv",
            caption="../report/buckets_table.rst",
            category="Model-zoo study",
            subcategory="1 accuracy buckets ({dataset})",
        ),
        figure=report(
            "results/{dataset}/figures/accuracy_buckets.png",
            caption="../report/buckets.rst",
            category="Model-zoo study",
            subcategory="1 accuracy buckets ({dataset})",
        ),
    params:
        edges=config["buckets"]["edges"],
        metric=config["buckets"]["metric"],
        seed=config["seed"],
    log:
        "logs/{dataset}/buckets.log",
    benchmark:
        "results/benchmarks/{dataset}/buckets.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/buckets.py"
