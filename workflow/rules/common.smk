# Input functions and config helpers shared by every stage. Output paths are relative to the
# working directory (results of dataset D live in results/D/); source paths (scripts, schema,
# envs) are relative to the file naming them, so the workflow runs wherever it is deployed.
import os
import re

import pandas as pd
import yaml
from snakemake.exceptions import WorkflowError

from causalxai.attribution.custom import BUILTINS, method_specs
from causalxai.code import module_files
from causalxai.config import (
    ZOO_DATASETS,
    check_config,
    dataset_kind,
    reliability_methods,
    tracer_target,
)
from causalxai.data.custom import TABULAR_SETS, loader_source
from causalxai.data.dataset import DATASETS as IMAGE_SETS
from causalxai.data.dataset import download_files

# Every check before the first job: the schema beside the config once more (integers written as
# floats: JSON Schema's 1.0 is an integer), then the cross checks of causalxai.config.check_config
# (sample counts against the splits, image sizes against both networks, TRACER's architecture built
# once without training to resolve tracer.layers, ...). The checks that need torch remember in
# .snakemake/ that they passed, so a re-run of an unchanged config does not import torch here.
with open(workflow.source_path("../../config/schema.yaml")) as _schema:
    check_config(
        config,
        schema=yaml.safe_load(_schema),
        cache=os.path.join(".snakemake", "causalxai-checks"),
    )


# CUDA is checked when a run starts, in the run's one onstart hook (rules/consistency.smk).


DATASETS = config["datasets"]
#: the zoo study's methods by label (explain.methods): built-in names and custom methods (their entries)
EXPLAIN_METHODS = {
    s.label: s for s in method_specs(config["explain"]["methods"], "explain.methods", BUILTINS["explain.methods"])
}
#: zoo_train or zoo_smallcnnzoo (workflow/rules/zoo.smk), the rule that writes results/{dataset}/zoo.nc
ZOO_RULE = (
    "zoo_source"  # zoo.source checkpoints or modelzoos: one rule reads either
    if config["zoo"]["source"] in ("checkpoints", "modelzoos")
    else f"zoo_{config['zoo']['source']}"
)
#: the analysed samples drawn as causal graphs and contribution maps (rule tracer_sample_figures)
TRACER_FIGURE_SAMPLES = min(config["tracer"]["figures"]["samples"], config["tracer"]["n_samples"])


#: the user data sets (data.custom), each usable in datasets and tracer.datasets
CUSTOM_SETS = config["data"]["custom"]
#: TRACER's data sets whose target is an image model: compress and the counterfactuals run on these only
#: (the counterfactual GAN is convolutional, compress rebuilds image classifiers; tabular sets skip them)
TRACER_IMAGE_SETS = [d for d in config["tracer"]["datasets"] if dataset_kind(config, d) != "tabular"]


wildcard_constraints:
    dataset="|".join(map(re.escape, [*IMAGE_SETS, *TABULAR_SETS, *CUSTOM_SETS])),


def package_source():
    """Where pip finds this workflow's own package (pyproject.toml at the repository root): the
    checkout of a local workflow, or the git repository at the module's ref of a hosted one (a
    module with snakefile: github(...) or gitlab(...))."""
    here = workflow.current_basedir  # workflow/rules of this workflow, wherever it is read from
    if here.is_local:
        return os.path.dirname(os.path.dirname(here.get_path_or_uri(secret_free=True)))
    if hasattr(here, "repo") and hasattr(here, "host"):
        return f"git+https://{here.host}/{here.repo}@{here.ref}#egg=causalxai"
    raise WorkflowError(
        f"cannot tell pip where the causalxai package of {here} is: set CAUSALXAI_SOURCE to its "
        "folder (the one holding pyproject.toml) or to a pip URL of it"
    )


# The rules' conda env (envs/causalxai.yaml) installs the package with pip from ${CAUSALXAI_SOURCE}
# (a value set by the user wins); declared, so that Snakemake passes it on to cluster jobs.
if "CAUSALXAI_SOURCE" not in os.environ:
    os.environ["CAUSALXAI_SOURCE"] = package_source()


envvars:
    "CAUSALXAI_SOURCE",


# The scripts' shared helper, workflow/scripts/common: Snakemake puts a local script's folder on
# the script's sys.path, and for a hosted workflow the source-cache folder of the script; caching
# the helper puts it there next to the scripts.
workflow.source_path("../scripts/common/__init__.py")


def package_code(script):
    """The causalxai source files a rule's script runs (causalxai.code.module_files): listed
    as the rule's `code` input, so editing one re-runs the rules that use it (mtime trigger)."""
    return module_files(workflow.source_path(f"../scripts/{script}"), relative_to=os.getcwd())


def outputs(*targets, **values):
    """Every output file of the rules `targets` (``rules.<name>``), each wildcard expanded over
    its values in `values` (a rule's outputs name some of the wildcards; the others are ignored)."""
    return expand([path for target in targets for path in target.output], **values)


def dataset_params(wildcards):
    """Only the values that matter for this dataset, so changing a digits-only key
    does not re-run a real dataset's step."""
    if wildcards.dataset == "digits":
        return {
            "image_size": config["data"]["image_size"],
            "test_fraction": config["data"]["test_fraction"],
            "seed": config["seed"],
        }
    if wildcards.dataset in TABULAR_SETS:
        return {
            "image_size": None,
            "test_fraction": config["data"]["test_fraction"],
            "seed": config["seed"],
        }
    if wildcards.dataset in CUSTOM_SETS:  # the declaration itself (loader or path, range, n_classes)
        return {"custom": dict(CUSTOM_SETS[wildcards.dataset])}
    return {"image_size": None, "test_fraction": None, "seed": None}


def custom_data_inputs(wildcards):
    """A user data set's .npz file, or its loader's module source when it has one (a changed file
    re-runs the dataset step and what follows); none for the built-in sets."""
    spec = CUSTOM_SETS.get(wildcards.dataset)
    if spec is None:
        return []
    if spec.get("path"):
        return [spec["path"]]
    source = loader_source(spec["loader"])
    return [os.path.relpath(source)] if source else []


# Downloads (rules download_images and download_zoo, local rules: on a cluster they run where
# Snakemake runs, the login node, and no compute job touches the network). They write into
# data.cache_dir the very files the package downloads there, so an existing cache is reused.
CACHE_DIR = config["data"]["cache_dir"]
#: the image sets that are downloaded (all but digits, which scikit-learn ships)
DOWNLOADED_SETS = [d for d in IMAGE_SETS if download_files(d)]
#: every downloaded image-set file name (one download_images job per file)
IMAGE_FILES = sorted({f for d in DOWNLOADED_SETS for f in download_files(d)})


def image_downloads(wildcards):
    """The downloaded files the dataset step reads (none for digits), as ancient(): their bytes
    are fixed by the MD5s in the package's SOURCES (and verified again by the reader), so a
    file downloaded anew, copied or touched does not re-run the data set and all that follows."""
    if wildcards.dataset in CUSTOM_SETS:
        return []
    return [ancient(os.path.join(CACHE_DIR, wildcards.dataset, f)) for f in download_files(wildcards.dataset)]


def image_download_params(wildcards):
    """Where one image-set file comes from and its MD5 (causalxai.data.dataset.SOURCES)."""
    spec = download_files(wildcards.dataset).get(wildcards.file)
    if spec is None:
        raise WorkflowError(f"{wildcards.file} is not a file of the image set {wildcards.dataset}")
    return spec


def zoo_archive(wildcards):
    """The Small CNN Zoo archive the zoo_smallcnnzoo step reads. Not ancient(): the zoo publishes
    no digests, so an archive downloaded anew (a changed URL) may hold other runs and must be
    read again; and Snakemake 9 does not re-run an ancient() reader in the same invocation that
    re-runs its producer, even when the reader's own params changed."""
    return os.path.join(CACHE_DIR, f"{wildcards.dataset}.tar.xz")


def zoo_download_params(wildcards):
    z = config["zoo"]["smallcnnzoo"]
    return {"url": z["url"].format(dataset=wildcards.dataset), "sha256": z["sha256"].get(wildcards.dataset)}


# Settings that cannot change a step's result are not params: changing them re-runs nothing. The
# scripts read them from snakemake.config: `device`, zoo.train.chunk_size, explain.chunk_size and
# explain.shards (the shard files' names carry the count), tracer.interventions.batch_size (inputs per
# forward pass of the TRACER steps). Training batch sizes change results and stay params.


def zoo_train_params(wildcards):
    """zoo.train's settings but chunk_size: the zoo's random draws come in blocks of 16 models
    whatever the chunk (causalxai.zoo.train.RNG_BLOCK), so chunk_size does not change the zoo."""
    return {
        "n_models": config["zoo"]["n_models"],
        "seed": config["seed"],
        **{k: v for k, v in config["zoo"]["train"].items() if k != "chunk_size"},
    }


def zoo_source_params(wildcards):
    """zoo.checkpoints or zoo.modelzoos (the source's), {dataset} filled in its paths."""
    from causalxai.zoo.checkpoints import for_dataset

    source = config["zoo"]["source"]
    return for_dataset(config["zoo"][source], wildcards.dataset)


def zoo_source_files(wildcards):
    """What a checkpoints zoo reads: its table and every state dict the table names (a new
    file or table re-runs the zoo); a Model Zoo: its folder or archive."""
    p = zoo_source_params(wildcards)
    if config["zoo"]["source"] == "modelzoos":
        return [p["path"]]
    table = pd.read_csv(p["table"])
    return [p["table"], *(os.path.join(p["dir"], str(f)) for f in table[p["file_column"]])]


def smallcnnzoo_params(wildcards):
    z = config["zoo"]["smallcnnzoo"]
    return {
        **zoo_download_params(wildcards),
        "final_step": z["final_step"],
        "max_models": z["max_models"],
        "seed": config["seed"],
    }


def explain_common_params(wildcards):
    """The settings of predictions and every method: not chunk_size (models per pass) or the device,
    which the scripts read from snakemake.config (the maps do not depend on them)."""
    e = config["explain"]
    return {"output": e["output"], "dtype": e["dtype"], "seed": config["seed"]}


def explain_method_params(wildcards):
    """The settings of one method only: changing SmoothGrad's samples re-runs SmoothGrad."""
    e = config["explain"]
    own = {"smoothgrad": e["smoothgrad"], "integrated_gradients": e["integrated_gradients"]}
    spec = EXPLAIN_METHODS.get(wildcards.method)
    if spec is not None and spec.kind != "builtin":  # a custom method: its entry (name, kwargs)
        own[wildcards.method] = {"custom": spec.as_params()}
    return {
        **explain_common_params(wildcards),
        "method": wildcards.method,
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


def explain_shard_index(wildcards):
    """The model range (0-based) of scatter item "k-of-n" (Snakemake numbers them from 1)."""
    k, n = map(int, wildcards.scatteritem.split("-of-"))
    if n != config["explain"]["shards"]:
        raise WorkflowError(
            f"--set-scatter explain={n} disagrees with explain.shards={config['explain']['shards']}: "
            "set explain.shards in the config instead"
        )
    return k - 1


def explanation_files(wildcards):
    return {m: f"results/{wildcards.dataset}/explanations/{m}.nc" for m in EXPLAIN_METHODS}


def effects_inputs(wildcards):
    d = wildcards.dataset
    return {
        "zoo": f"results/{d}/zoo.nc",
        "buckets": f"results/{d}/buckets.nc",
        "predictions": f"results/{d}/predictions.nc",
        **{f"E_{m}": p for m, p in explanation_files(wildcards).items()},
    }


def explanation_shards(wildcards, method):
    """The raw maps of one method: its explain_shard outputs (the scatter items k-of-n)."""
    n = config["explain"]["shards"]
    d = wildcards.dataset
    return [f"results/{d}/explanations/shards/{method}.{k}-of-{n}.nc" for k in range(1, n + 1)]


def sensitivity_inputs(wildcards):
    """The sensitivity report renormalises the raw maps, read from the shards."""
    d = wildcards.dataset
    return {
        "zoo": f"results/{d}/zoo.nc",
        "buckets": f"results/{d}/buckets.nc",
        "predictions": f"results/{d}/predictions.nc",
        **{f"shards_{m}": explanation_shards(wildcards, m) for m in EXPLAIN_METHODS},
    }


def effects_params(wildcards):
    """Every effects setting that changes effects.nc (not the figures' aggregation)."""
    e = config["effects"]
    return {
        **{k: v for k, v in e.items() if k not in ("aggregation", "sensitivity", "figures")},
        "seed": config["seed"],
    }


def tracer_params(*keys):
    """An input function giving the TRACER settings that one step uses (from config tracer.layers,
    .interventions, .cka and .ace), flat as causalxai.tracer.settings.TracerSettings.from_params
    takes them. Only `keys` are given, so changing one re-runs only the steps that use it (eps re-runs
    causal_nodes and what follows, never interventions)."""

    def params(wildcards):
        t = config["tracer"]
        flat = {
            "layers": tracer_target(config, wildcards.dataset)[1],
            **t["interventions"],
            "kernel": t["cka"]["kernel"],
            "eps": t["cka"]["eps"],
            "eps_sweep": t["cka"]["eps_sweep"],
            **t["ace"],
        }
        if dataset_kind(config, wildcards.dataset) == "tabular":  # 1 x k windows (paper 004 App. D)
            flat.update(patch=[1, flat["patch"]], stride=[1, flat["stride"]])
        return {k: flat[k] for k in keys}

    return params


def reliability_params(wildcards):
    """tracer.reliability with the methods that apply to the data set (no Grad-CAM on tabular data)."""
    rel = dict(config["tracer"]["reliability"])
    rel["methods"] = reliability_methods(rel["methods"], dataset_kind(config, wildcards.dataset))
    return rel


def target_weights(wildcards):
    """The user's trained weights of the TRACER target (tracer.model.weights, {dataset} filled
    in), an input of target_model so a new file re-runs it; none when the target is trained."""
    weights = config["tracer"]["model"]["weights"]
    return [] if weights is None else weights.format(dataset=wildcards.dataset)


def target_model_params(wildcards):
    """tracer.model for one data set (its architecture, when one is named per data set), without
    the training keys when the model is loaded or pretrained (they change nothing)."""
    model = dict(config["tracer"]["model"])
    model["architecture"] = tracer_target(config, wildcards.dataset)[0]
    if model["weights"] is not None or model["pretrained"]:
        for key in ("epochs", "batch_size", "lr"):
            model.pop(key)
    if model["weights"] is not None:
        model["weights"] = target_weights(wildcards)
    if not model["pretrained"]:
        model.pop("pretrained")  # absent when false: the params of existing runs stay as they were
    return model
