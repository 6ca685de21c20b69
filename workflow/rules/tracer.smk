# TRACER (paper 004): one classifier per dataset, occlusion interventions, CKA layer
# groups (causal nodes) and links, average causal effects, global mechanisms and the
# reliability of its explanations next to seven established methods.


wildcard_constraints:
    k=r"\d+",


rule target_model:
    input:
        dataset="results/{dataset}/dataset.nc",
        trained=target_weights,
        code=package_code("target_model.py"),
    output:
        weights="results/{dataset}/tracer/target_model.pt",
        summary="results/{dataset}/tracer/target_model.nc",
        layers=report(
            "results/{dataset}/tables/target_model_layers.csv",
            caption="../report/target_model_layers.rst",
            category="TRACER",
            subcategory="1 target model ({dataset})",
        ),
    params:
        model=target_model_params,
        seed=config["seed"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/target_model.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/target_model.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/target_model.py"


rule tracer_samples:
    input:
        dataset="results/{dataset}/dataset.nc",
        code=package_code("tracer_samples.py"),
    output:
        samples="results/{dataset}/tracer/samples.nc",
    params:
        n_samples=config["tracer"]["n_samples"],
        reliability_n_samples=config["tracer"]["reliability"]["n_samples"],
        seed=config["seed"],
    log:
        "logs/{dataset}/tracer/tracer_samples.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/tracer_samples.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/tracer_samples.py"


rule interventions:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        dataset="results/{dataset}/dataset.nc",
        samples="results/{dataset}/tracer/samples.nc",
        code=package_code("interventions.py"),
    output:
        interventions="results/{dataset}/tracer/interventions.nc",
    params:
        tracer=tracer_params("layers", "patch", "stride", "baseline", "kernel"),
        seed=config["seed"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/interventions.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/interventions.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/interventions.py"


rule causal_nodes:
    input:
        interventions="results/{dataset}/tracer/interventions.nc",
        code=package_code("causal_nodes.py"),
    output:
        nodes="results/{dataset}/tracer/causal_nodes.nc",
    params:
        tracer=tracer_params("eps", "eps_sweep"),
    log:
        "logs/{dataset}/tracer/causal_nodes.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/causal_nodes.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/causal_nodes.py"


rule ace:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        interventions="results/{dataset}/tracer/interventions.nc",
        nodes="results/{dataset}/tracer/causal_nodes.nc",
        code=package_code("ace.py"),
    output:
        ace="results/{dataset}/tracer/ace.nc",
    params:
        tracer=tracer_params("mask_threshold", "top_k", "top_units"),
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/ace.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/ace.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/ace.py"


rule mechanisms:
    input:
        interventions="results/{dataset}/tracer/interventions.nc",
        nodes="results/{dataset}/tracer/causal_nodes.nc",
        code=package_code("mechanisms.py"),
    output:
        mechanisms="results/{dataset}/tracer/mechanisms.nc",
        table=report(
            "results/{dataset}/tables/mechanisms.csv",
            caption="../report/tracer_coverage.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
        stability=report(
            "results/{dataset}/tables/mechanisms_stability.csv",
            caption="../report/tracer_mechanism_stability.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
    params:
        mechanisms=config["tracer"]["mechanisms"],
        seed=config["seed"],
    log:
        "logs/{dataset}/tracer/mechanisms.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/mechanisms.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/mechanisms.py"


rule reliability:
    input:
        weights="results/{dataset}/tracer/target_model.pt",
        dataset="results/{dataset}/dataset.nc",
        samples="results/{dataset}/tracer/samples.nc",
        code=package_code("reliability.py"),
    output:
        reliability="results/{dataset}/tracer/reliability.nc",
        table=report(
            "results/{dataset}/tables/reliability.csv",
            caption="../report/tracer_reliability.rst",
            category="TRACER",
            subcategory="4 reliability ({dataset})",
        ),
    params:
        reliability=reliability_params,
        tracer=tracer_params("patch", "stride", "baseline", "mask_threshold"),
        seed=config["seed"],
    threads: 8
    resources:
        gpu=1,
    log:
        "logs/{dataset}/tracer/reliability.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/reliability.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/reliability.py"


rule tracer_figures:
    input:
        nodes="results/{dataset}/tracer/causal_nodes.nc",
        mechanisms="results/{dataset}/tracer/mechanisms.nc",
        ace="results/{dataset}/tracer/ace.nc",
        reliability="results/{dataset}/tracer/reliability.nc",
        code=package_code("tracer_figures.py"),
    output:
        cka=report(
            "results/{dataset}/figures/tracer/cka.png",
            caption="../report/tracer_cka.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
        eps_sweep=report(
            "results/{dataset}/figures/tracer/eps_sweep.png",
            caption="../report/tracer_eps_sweep.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
        coverage=report(
            "results/{dataset}/figures/tracer/coverage.png",
            caption="../report/tracer_coverage.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
        stability=report(
            "results/{dataset}/figures/tracer/mechanism_stability.png",
            caption="../report/tracer_mechanism_stability.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
        node_validation=report(
            "results/{dataset}/figures/tracer/node_validation.png",
            caption="../report/tracer_node_validation.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
        reliability=report(
            "results/{dataset}/figures/tracer/reliability.png",
            caption="../report/tracer_reliability.rst",
            category="TRACER",
            subcategory="2 causal nodes and mechanisms ({dataset})",
        ),
    log:
        "logs/{dataset}/tracer/figures.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/figures.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/tracer_figures.py"


rule tracer_sample_figures:
    input:
        interventions="results/{dataset}/tracer/interventions.nc",
        nodes="results/{dataset}/tracer/causal_nodes.nc",
        ace="results/{dataset}/tracer/ace.nc",
        dataset="results/{dataset}/dataset.nc",
        code=package_code("tracer_sample_figures.py"),
    output:
        graph=report(
            "results/{dataset}/figures/tracer/causal_graph_{k}.png",
            caption="../report/tracer_graph.rst",
            category="TRACER",
            subcategory="3 per-sample contributions ({dataset})",
        ),
        contributions=report(
            "results/{dataset}/figures/tracer/contributions_{k}.png",
            caption="../report/tracer_contributions.rst",
            category="TRACER",
            subcategory="3 per-sample contributions ({dataset})",
        ),
    params:
        position=lambda wildcards: int(wildcards.k),
    log:
        "logs/{dataset}/tracer/sample_figures_{k}.log",
    benchmark:
        "results/benchmarks/{dataset}/tracer/sample_figures_{k}.tsv"
    conda:
        "../../envs/causalxai.yaml"
    script:
        "../scripts/tracer_sample_figures.py"
