# Compressed models built from TRACER's global mechanisms: every causal node of several
# layers becomes one layer, retrained from scratch over seeds and measured next to matched
# controls and the paper's Table 2 models (paper 004 §4.3, Tables 1-2; issue 16).


rule compress:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        dataset="results/{dataset}/dataset.nc",
        mechanisms="results/{dataset}/tracer/mechanisms.nc",
        samples="results/{dataset}/tracer/samples.nc",
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
        tracer=tracer_params("layers", "patch", "stride", "baseline", "kernel", "eps", "eps_sweep"),
        seed=config["seed"],
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
