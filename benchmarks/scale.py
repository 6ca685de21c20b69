"""Benchmark: time and peak memory of the zoo study's memory-bound steps as the zoo grows
(issue 15: every step's memory O(chunk), not O(zoo)).

For each zoo size N it builds, in ``--workdir``, synthetic inputs in the workflow's own
file contracts (``zoo.nc`` with random weights and sampled hyperparameters, ``images.nc``,
and one method's raw ``explain_shard`` outputs, since computing N models' saliency maps would
take hours on a CPU), then runs each step the way its rule's script does, each in a fresh
child process, and records its wall time and peak RSS (``resource.getrusage`` of the child
itself: the true peak, not a sampler's):

* ``import``       the package and torch imported, nothing else (the floor of every step);
* ``zoo``          ``zoo.nc`` read without its weights (what buckets, effects, the figures read);
* ``buckets``      accuracy buckets (rule ``buckets``);
* ``predictions``  every model's softmax on the probe images, streamed (rule ``predictions``);
* ``explain_shard`` one shard of ``--shard-models`` models, gradient, total and direct (rule
  ``explain_shard``; the shard's size is fixed, as ``explain.shards`` grows with the zoo);
* ``gather``       the method's shards streamed into ``explanations/gradient.nc`` (rule ``explain_gather``);
* ``effects``      eq. (4) effects with intervals and nulls from the lazy maps (rule ``effects``;
  ``--bootstrap`` / ``--permutations`` replicates, fewer than the default's 200 / 100 to keep
  the run short: memory does not depend on them, time does, linearly);
* ``meta_model``   the meta-model of App. A.2 (``--meta-epochs`` epochs).

It prints a table per step and N, and per step the fitted growth exponents of time and of
peak memory above the ``import`` floor (log-log least squares over N: 0 = independent of the
zoo, 1 = linear). ``--naive`` also runs the pre-issue-15 gather (every shard loaded,
``xr.concat``, normalised in memory) for the ratio.

    python benchmarks/scale.py                                   # N = 1k, 3k, 10k, 30k
    python benchmarks/scale.py --models 1000 2000 --steps gather predictions --naive
    python benchmarks/scale.py --models 300 600 --images 20 --json peaks.json   # the suite's check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEPS = ("import", "zoo", "buckets", "predictions", "explain_shard", "gather", "effects", "meta_model")
EDGES = [0, 20, 40, 60, 80, 90, 95, 99, 100]
METHOD = "gradient"
#: the steps whose rules run with causalxai.runtime.bounded_heap (not explain_shard, compute-bound,
#: nor effects, which ran 1.7x longer with it; nor buckets)
BOUNDED_HEAP = ("predictions", "gather", "gather_naive", "meta_model")
#: steps run only for comparison (the pre-issue-15 way): a failure is reported, not raised
CONTROLS = ("gather_naive",)


# ---------------------------------------------------------------------------------------
# synthetic inputs (built in the parent, not measured)


def build(work: Path, n_models: int, n_images: int, side: int, shard_models: int, seed: int = 0) -> None:
    """zoo.nc, images.nc and the method's raw shards of an ``n_models`` zoo in ``work``."""
    import pandas as pd
    import xarray as xr

    from causalxai.io import set_attr, write_dataset, write_streamed
    from causalxai.zoo.dataset import make_zoo_dataset
    from causalxai.zoo.hparams import CATEGORICAL, HPARAMS, sample_hparams
    from causalxai.zoo.network import zoo_layout

    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hp = sample_hparams(n_models, {}, seed=seed)
    acc = rng.uniform(0.1, 0.99, size=n_models)
    one = make_zoo_dataset(np.zeros((1, 4970), np.float32), hp.iloc[:1], pd.DataFrame({"test_accuracy": acc[:1]}),
                           zoo_layout(1), dataset="synthetic", source="train", input_size=side)
    skeleton = xr.Dataset(
        {"test_accuracy": ("model", acc), "train_accuracy": ("model", acc),
         "test_loss": ("model", 1 - acc), "train_loss": ("model", 1 - acc)},
        coords={"model": np.arange(n_models), "param": np.arange(4970),
                **{k: ("model", hp[k].to_numpy().astype(str if k in CATEGORICAL else np.float64)) for k in HPARAMS},
                "source_row": ("model", np.arange(n_models))},
        attrs=dict(one.attrs),
    )
    with write_streamed(skeleton, work / "zoo.nc", step="zoo") as nc:
        var = nc.createVariable("weights", "f4", ("model", "param"), zlib=False, chunksizes=(min(256, n_models), 4970))
        set_attr(var, "description", "synthetic weights")
        for lo in range(0, n_models, 4096):
            hi = min(n_models, lo + 4096)
            var[lo:hi] = rng.normal(scale=0.15, size=(hi - lo, 4970)).astype(np.float32)
    images = xr.Dataset(
        {"pixels": (("image", "y", "x"), rng.uniform(-1, 1, size=(n_images, side, side)).astype(np.float32)),
         "label": ("image", np.arange(n_images) % 10)},
        coords={"image": np.arange(n_images)},
    )
    write_dataset(images, work / "images.nc", step="images")
    # raw maps in explain_shard's contract, ~1,000 models per shard file
    (work / "shards").mkdir(exist_ok=True)
    n_files = max(1, int(np.ceil(n_models / 1000)))
    for k, models in enumerate(np.array_split(np.arange(n_models), n_files)):
        skeleton = xr.Dataset(coords={"model": models, "effect": ["total", "direct"], "image": np.arange(n_images)},
                              attrs={"method": METHOD})
        with write_streamed(skeleton, work / "shards" / f"{METHOD}.{k + 1}-of-{n_files}.nc",
                            step="explain_shard") as nc:
            nc.createDimension("y", side)
            nc.createDimension("x", side)
            var = nc.createVariable("attribution", "f4", ("model", "effect", "image", "y", "x"), zlib=False,
                                    chunksizes=(1, 1, n_images, side, side))
            for lo in range(0, models.size, 128):
                hi = min(models.size, lo + 128)
                var[lo:hi] = rng.standard_normal((hi - lo, 2, n_images, side, side), dtype=np.float32)


# ---------------------------------------------------------------------------------------
# the steps (run in a child process each)


def _settings(args: argparse.Namespace):
    from causalxai.study.explain import ExplainSettings

    return ExplainSettings(device="cpu", seed=0)


def run_step(step: str, work: Path, args: argparse.Namespace) -> None:
    import torch

    from causalxai import io
    from causalxai.runtime import bounded_heap
    from causalxai.zoo.dataset import open_hparams

    if step in BOUNDED_HEAP and not args.default_heap:
        bounded_heap()  # as the rule's script does (workflow/scripts/common.start(bounded_heap=True))
    torch.set_num_threads(args.threads)
    if args.gram_bytes is not None:
        import causalxai.study.effects as effects

        effects.GRAM_BYTES = args.gram_bytes
    if step == "import":
        return
    if step == "zoo":
        zoo = open_hparams(work / "zoo.nc")
        assert zoo.sizes["model"] > 0
    elif step == "buckets":
        from causalxai.study.buckets import make_buckets

        ds = make_buckets(open_hparams(work / "zoo.nc"), EDGES, "test_accuracy", seed=0)
        io.write_dataset(ds, work / "buckets.nc", step="buckets")
    elif step == "predictions":
        from causalxai.study.predictions import predict_zoo_to_file

        with io.open_lazy(work / "zoo.nc") as zoo:
            predict_zoo_to_file(zoo, io.open(work / "images.nc"), _settings(args), work / "predictions.nc")
    elif step == "explain_shard":
        from causalxai.study.explain import explain_zoo, model_shard

        with io.open_lazy(work / "zoo.nc") as zoo, io.open_lazy(work / "predictions.nc") as pred:
            n = zoo.sizes["model"]
            models = model_shard(n, max(1, n // args.shard_models), 0)
            ds = explain_zoo(zoo, io.open(work / "images.nc"), pred, METHOD, _settings(args), models,
                             normalise=False)
        io.write_dataset(ds, work / "shard.nc", step="explain_shard")
    elif step == "gather":
        from causalxai.study.explain import gather_to_file

        gather_to_file(sorted((work / "shards").glob("*.nc")), work / f"{METHOD}.nc", METHOD, _settings(args))
    elif step == "gather_naive":
        import xarray as xr

        from causalxai.study.explain import normalise_explanations

        parts = [xr.load_dataset(p) for p in sorted((work / "shards").glob("*.nc"))]
        raw = xr.concat(parts, dim="model").sortby("model")
        ds = normalise_explanations(raw, METHOD, _settings(args))
        io.write_dataset(ds, work / f"{METHOD}_naive.nc", step="explain")
    elif step == "effects":
        from causalxai.study.effects import EffectsSettings, compute_effects

        settings = EffectsSettings(bootstrap=args.bootstrap, permutations=args.permutations, seed=0)
        with (io.open_lazy(work / f"{METHOD}.nc", variables=["E", "degenerate"]) as maps,
              io.open_lazy(work / "predictions.nc", variables=["prob", "prob_direct"]) as pred):
            ds = compute_effects(open_hparams(work / "zoo.nc"), io.open(work / "buckets.nc"),
                                 pred, {METHOD: maps}, settings)
        io.write_dataset(ds, work / "effects.nc", step="effects")
    elif step == "meta_model":
        from causalxai.study.meta_model import MetaModelSettings, fit_meta_model

        ds = fit_meta_model(open_hparams(work / "zoo.nc"), io.open(work / "images.nc"),
                            io.open(work / "predictions.nc", variables=["target"]),
                            MetaModelSettings(epochs=args.meta_epochs, device="cpu"))
        io.write_dataset(ds, work / "meta_model.nc", step="meta_model")
    else:
        raise ValueError(f"unknown step {step!r}; choose from {STEPS}")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` (Linux: the high-water mark of this
    program's own memory, reset by ``exec``); else ``ru_maxrss``, which on Linux also counts
    what the parent held when it forked."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def child(step: str, work: Path, args: argparse.Namespace) -> dict:
    """Run ``step`` in a fresh interpreter; its wall time and its own peak RSS in MB."""
    cmd = [sys.executable, __file__, "--child", step, "--workdir", str(work), "--threads", str(args.threads),
           "--shard-models", str(args.shard_models), "--bootstrap", str(args.bootstrap),
           "--permutations", str(args.permutations), "--meta-epochs", str(args.meta_epochs)]
    if args.default_heap:
        cmd.append("--default-heap")
    if args.gram_bytes is not None:
        cmd += ["--gram-bytes", str(args.gram_bytes)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        if step in CONTROLS:  # the control may die of what it demonstrates: recorded, not fatal
            why = "killed (out of memory?)" if out.returncode in (-9, 137) else f"failed (rc {out.returncode})"
            return {"seconds": float("nan"), "peak_mb": float("nan"), "note": why}
        raise RuntimeError(f"step {step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def naive_gather_need_mb(work: Path) -> float:
    """What the in-memory gather needs: about 4x the raw maps (measured 4.1x at 3,000 models:
    every shard loaded, concatenated, sorted, normalised)."""
    return 4.2 * sum(p.stat().st_size for p in (work / "shards").glob("*.nc")) / 2**20


def available_mb() -> float:
    """``MemAvailable`` of this machine in MB (inf where /proc/meminfo is not there)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def exponent(ns: list[int], ys: list[float]) -> float:
    """Slope of log y on log N (least squares); NaN with fewer than two positive points."""
    pts = [(n, y) for n, y in zip(ns, ys) if y > 0]
    if len(pts) < 2:
        return float("nan")
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, nargs="+", default=[1000, 3000, 10000, 30000])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--side", type=int, default=28)
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=[*STEPS, "gather_naive"])
    ap.add_argument("--naive", action="store_true", help="also run the in-memory gather, for the ratio")
    ap.add_argument("--shard-models", type=int, default=128)
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--permutations", type=int, default=10)
    ap.add_argument("--meta-epochs", type=int, default=2)
    ap.add_argument("--gram-bytes", type=int, default=None,
                    help="the effects step's shared-Gram limit (causalxai.study.effects.GRAM_BYTES)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--default-heap", action="store_true",
                    help="leave glibc's malloc as it is in every step (no causalxai.runtime.bounded_heap)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed afterwards")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic files")
    ap.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--build", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        t0 = time.perf_counter()
        run_step(args.child, args.workdir, args)
        print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": peak_rss_mb()}))
        return
    if args.build:
        build(args.workdir, args.build, args.images, args.side, args.shard_models)
        return

    steps = [s for s in STEPS if s in args.steps]
    if "import" not in steps:
        steps.insert(0, "import")
    if args.naive and "gather_naive" not in steps:
        steps.insert(steps.index("gather") + 1 if "gather" in steps else len(steps), "gather_naive")
    needs = {"predictions": ["predictions"], "explain_shard": ["predictions"], "effects": ["buckets", "predictions",
             "gather"], "meta_model": ["predictions"]}
    root = args.workdir or Path(tempfile.mkdtemp(prefix="causalxai-scale-"))
    rows = []
    try:
        for n in args.models:
            work = root / f"n{n}"
            t0 = time.perf_counter()
            # built in a child too, so that this process stays small
            subprocess.run([sys.executable, __file__, "--build", str(n), "--workdir", str(work), "--images",
                            str(args.images), "--side", str(args.side), "--shard-models", str(args.shard_models)],
                           check=True)
            print(f"# N = {n}: synthetic inputs built in {time.perf_counter() - t0:.0f} s "
                  f"({sum(p.stat().st_size for p in work.rglob('*.nc')) / 2**30:.2f} GiB on disk)", flush=True)
            done = set()
            for step in steps:
                for dep in needs.get(step, []):
                    if dep not in done and dep not in steps:
                        child(dep, work, args)  # an input the step needs, not measured
                        done.add(dep)
                if step in CONTROLS and naive_gather_need_mb(work) > 0.9 * available_mb():
                    r = {"seconds": float("nan"), "peak_mb": float("nan"),
                         "note": f"not run: needs ~{naive_gather_need_mb(work) / 1024:.0f} GB, "
                                 f"{available_mb() / 1024:.0f} GB available"}
                else:
                    r = child(step, work, args)
                done.add(step)
                rows.append({"step": step, "models": n, **r})
                print(f"{step:>14} N={n:>6}  {r['seconds']:8.1f} s  {r['peak_mb']:8.0f} MB  {r.get('note', '')}",
                      flush=True)
            if not args.keep:
                shutil.rmtree(work)
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    floor = {r["models"]: r["peak_mb"] for r in rows if r["step"] == "import"}
    print(f"\nimages {args.images} of {args.side}x{args.side}; one method ({METHOD}); {args.threads} threads; "
          f"effects with {args.bootstrap} bootstrap replicates and {args.permutations} permutations\n")
    print(f"| step | {' | '.join(f'N={n:,}' for n in args.models)} | time exponent | memory exponent |")
    print(f"|---|{'---|' * len(args.models)}---|---|")
    summary = {}
    for step in steps:
        rs = [r for r in rows if r["step"] == step]
        ns = [r["models"] for r in rs]
        cells = [r["note"] if "note" in r else f"{r['seconds']:.1f} s, {r['peak_mb']:.0f} MB" for r in rs]
        t_exp = exponent(ns, [r["seconds"] for r in rs])
        m_exp = exponent(ns, [r["peak_mb"] - floor[r["models"]] for r in rs]) if step != "import" else float("nan")
        summary[step] = {"time_exponent": t_exp, "memory_exponent": m_exp}
        print(f"| {step} | {' | '.join(cells)} | {t_exp:.2f} | {m_exp:.2f} |")
    if "gather_naive" in summary and "gather" in summary:
        for n in args.models:
            a = next(r for r in rows if r["step"] == "gather" and r["models"] == n)
            b = next(r for r in rows if r["step"] == "gather_naive" and r["models"] == n)
            if "note" in b:
                print(f"gather at N={n}: in-memory gather {b['note']}; streamed peak {a['peak_mb']:.0f} MB")
                continue
            print(f"gather at N={n}: in-memory peak / streamed peak = {b['peak_mb'] / a['peak_mb']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary, "images": args.images}, indent=1))


if __name__ == "__main__":
    main()
