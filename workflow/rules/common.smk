# Input functions and config helpers shared by every stage. Paths are relative to the
# working directory; results of dataset D live in results/D/.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from causalxai.code import module_files  # noqa: E402
from causalxai.config import check_config  # noqa: E402

check_config(config)

DATASETS = config["datasets"]


wildcard_constraints:
    dataset="|".join(["digits", "mnist", "fashion_mnist", "cifar10", "svhn_cropped"]),


def package_code(script):
    """The causalxai source files a rule's script runs (causalxai.code.module_files): listed
    as the rule's `code` input, so editing one re-runs the rules that use it (mtime trigger)."""
    return module_files(Path(workflow.basedir) / "workflow" / "scripts" / script)


def result(dataset, name):
    return f"results/{dataset}/{name}"


def dataset_params(wildcards):
    """Only the values that matter for this dataset, so changing a digits-only key
    does not re-run a real dataset's step."""
    if wildcards.dataset == "digits":
        return {
            "image_size": config["data"]["image_size"],
            "test_fraction": config["data"]["test_fraction"],
            "seed": config["seed"],
        }
    return {"image_size": None, "test_fraction": None, "seed": None}


def zoo_train_params(wildcards):
    return {
        "n_models": config["zoo"]["n_models"],
        "seed": config["seed"],
        "device": config["device"],
        **config["zoo"]["train"],
    }


def smallcnnzoo_params(wildcards):
    z = config["zoo"]["smallcnnzoo"]
    return {
        "url": z["url"].format(dataset=wildcards.dataset),
        "sha256": z["sha256"].get(wildcards.dataset),
        "final_step": z["final_step"],
        "max_models": z["max_models"],
        "seed": config["seed"],
    }


def explain_common_params(wildcards):
    e = config["explain"]
    return {
        "output": e["output"],
        "dtype": e["dtype"],
        "chunk_size": e["chunk_size"],
        "device": config["device"],
        "seed": config["seed"],
    }


def explain_method_params(wildcards):
    """The settings of one method only: changing SmoothGrad's samples re-runs SmoothGrad."""
    e = config["explain"]
    own = {"smoothgrad": e["smoothgrad"], "integrated_gradients": e["integrated_gradients"]}
    return {
        **explain_common_params(wildcards),
        "method": wildcards.method,
        "shards": e["shards"],
        **own.get(wildcards.method, {}),
    }


def explain_gather_params(wildcards):
    """A shard's settings and the normalisation (App. A.3), which the gather applies: changing
    it re-runs the gathers and what follows, not the saliency computation."""
    e = config["explain"]
    return {
        **explain_method_params(wildcards),
        "clip_percentile": e["clip_percentile"],
        "normalisation": e["normalisation"],
        "zero_maps": e["zero_maps"],
    }


def explain_shards(wildcards):
    return [
        f"results/{wildcards.dataset}/explanations/shards/{wildcards.method}.{k}.nc"
        for k in range(config["explain"]["shards"])
    ]


def explanation_files(wildcards):
    return {
        m: f"results/{wildcards.dataset}/explanations/{m}.nc" for m in config["explain"]["methods"]
    }


def effects_inputs(wildcards):
    d = wildcards.dataset
    return {
        "zoo": f"results/{d}/zoo.nc",
        "buckets": f"results/{d}/buckets.nc",
        "predictions": f"results/{d}/predictions.nc",
        **{f"E_{m}": p for m, p in explanation_files(wildcards).items()},
    }


def effects_params(wildcards):
    """Every effects setting that changes effects.nc (not the figures' aggregation)."""
    e = config["effects"]
    return {
        **{k: v for k, v in e.items() if k not in ("aggregation", "sensitivity")},
        "seed": config["seed"],
    }


def tracer_params(*keys):
    """An input function giving the TRACER settings (config tracer.layers, .interventions, .cka,
    .ace) a rule uses, flat as causalxai.tracer.settings.TracerSettings.from_params takes them:
    only `keys`, so changing one re-runs only the rules that use it (eps: causal_nodes and what
    follows, never interventions)."""

    def params(wildcards):
        t = config["tracer"]
        flat = {"layers": t["layers"], **t["interventions"], "kernel": t["cka"]["kernel"], "eps": t["cka"]["eps"],
                "eps_sweep": t["cka"]["eps_sweep"], **t["ace"]}
        return {k: flat[k] for k in keys}

    return params


def all_outputs():
    out = []
    for d in DATASETS:
        out += [
            result(d, "zoo.nc"),
            result(d, "images.nc"),
            result(d, "buckets.nc"),
            result(d, "tables/buckets.csv"),
            result(d, "figures/accuracy_buckets.png"),
            result(d, "predictions.nc"),
        ]
        out += [result(d, f"explanations/{m}.nc") for m in config["explain"]["methods"]]
        out += [
            result(d, "effects.nc"),
            result(d, "figures/effect_correlations.png"),
            result(d, "figures/ite_by_bucket.png"),
            result(d, "tables/effects_cate.csv"),
            result(d, "tables/effects_ate.csv"),
            result(d, "figures/ite_by_hparam.png"),
            result(d, "figures/ite_scatter.png"),
            result(d, "figures/mediation.png"),
            result(d, "tables/effects_sensitivity.csv"),
            result(d, "figures/effects_sensitivity.png"),
            result(d, "figures/kernel_heatmaps.png"),
            result(d, "figures/kernel_comparison.png"),
            result(d, "figures/predictions_by_optimizer.png"),
            result(d, "meta_model.nc"),
        ]
    out.append("results/figures/effect_correlations_by_dataset.png")
    for d in config["tracer"]["datasets"]:
        out += [
            result(d, "tracer/target_model.nc"),
            result(d, "tracer/samples.nc"),
            result(d, "tables/target_model_layers.csv"),
            result(d, "tracer/ace.nc"),
            result(d, "tracer/mechanisms.nc"),
            result(d, "tables/mechanisms.csv"),
            result(d, "tracer/reliability.nc"),
            result(d, "tables/reliability.csv"),
            result(d, "figures/tracer/cka.png"),
            result(d, "figures/tracer/eps_sweep.png"),
            result(d, "figures/tracer/coverage.png"),
            result(d, "figures/tracer/reliability.png"),
            result(d, "tracer/compress.nc"),
            result(d, "tables/compress_models.csv"),
            result(d, "tables/compress_layers.csv"),
            result(d, "figures/tracer/compress.png"),
            result(d, "tracer/counterfactual_gan.nc"),
            result(d, "tracer/counterfactuals.nc"),
            result(d, "tracer/counterfactual_tracer.nc"),
            result(d, "tables/counterfactuals.csv"),
            result(d, "figures/tracer/counterfactuals.png"),
        ]
        for k in range(min(config["tracer"]["figures"]["samples"], config["tracer"]["n_samples"])):
            out += [
                result(d, f"figures/tracer/causal_graph_{k}.png"),
                result(d, f"figures/tracer/contributions_{k}.png"),
            ]
    return out
