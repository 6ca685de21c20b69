# Compressed models built from TRACER's global mechanisms: every causal node of several
# layers becomes one layer, retrained from scratch and measured (paper 004 §4.3, Tables 1-2).


rule compress:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        dataset="results/{dataset}/dataset.nc",
        mechanisms="results/{dataset}/tracer/mechanisms.nc",
        code=package_code("compress.py"),
    output:
        compress="results/{dataset}/tracer/compress.nc",
        models="results/{dataset}/tracer/compressed_models.pt",
        table_models=report(
            "results/{dataset}/tables/compress_models.csv",
            caption="../report/compress.rst",
            category="TRACER",
            subcategory="6 compressed models ({dataset})",
        ),
        table_layers=report(
            "results/{dataset}/tables/compress_layers.csv",
            caption="../report/compress_layers.rst",
            category="TRACER",
            subcategory="6 compressed models ({dataset})",
        ),
        figure=report(
            "results/{dataset}/figures/tracer/compress.png",
            caption="../report/compress.rst",
            category="TRACER",
            subcategory="6 compressed models ({dataset})",
        ),
    params:
        compress=config["tracer"]["compress"],
        layers=config["tracer"]["layers"],
        seed=config["seed"],
        device=config["device"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/compress.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/compress.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/compress.py"
