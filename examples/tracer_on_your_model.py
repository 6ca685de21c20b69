"""TRACER (paper 004) on your own classifier and arrays, from Python, without Snakemake.

Run from the repository root:  python examples/tracer_on_your_model.py

It trains a small CNN of its own on scikit-learn's bundled 8x8 digits for a few seconds, then
runs the same code the workflow's rules run: interventions -> causal nodes (CKA, Def. 3-4) ->
ACE (Def. 5) -> global mechanisms (Fig. 11) -> reliability of the explanation masks (§4.1),
and prints each step's headline. Replace ``model``, ``x_train``/``y_train`` and ``x_test`` with
yours: the model maps normalised inputs (N, C, H, W) to logits; TRACER sets its occlusion
baseline in raw space, here [0, 1] with ``x = 2 * raw - 1`` (the package's convention).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from causalxai.tracer.mechanisms import mechanisms_dataset
from causalxai.tracer.model import train_classifier
from causalxai.tracer.pipeline import TracerSettings, output_attribution, run_tracer
from causalxai.tracer.reliability import BaselineSettings, ReliabilitySettings, reliability_dataset, reliability_table
from causalxai.tracer.settings import ClassifierSettings


def your_model() -> nn.Sequential:
    """Any torch classifier; its modules are observed by name (``tracer.layers``)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10),
    )


def main(n_samples: int = 8) -> dict[str, object]:
    torch.manual_seed(0)
    digits = load_digits()
    raw = (digits.images / 16.0).astype(np.float32)[:, None]          # raw pixels in [0, 1], (N, 1, 8, 8)
    x = torch.from_numpy(2 * raw - 1)                                   # normalised inputs
    y = torch.from_numpy(digits.target).long()
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]

    model = your_model()
    model, history = train_classifier(model, x_train, y_train, x_test, y_test,
                                      ClassifierSettings(epochs=3, batch_size=64, lr=1e-3, seed=0), device="cpu")
    print(f"test accuracy {history['final_test_accuracy']:.3f}")

    # the modules to observe, in forward order, ending at the logits (Sequential names: "1", "3", ...)
    settings = TracerSettings(layers=["1", "3", "6", "7"], patch=2, stride=2, eps=0.05)
    samples, labels = x_test[:n_samples], y_test[:n_samples]
    result = run_tracer(model, samples, settings, labels=labels.tolist(), device="cpu")
    groups = result.nodes["group"]
    print("causal nodes per sample:", result.nodes["n_groups"].values.tolist())

    mech = mechanisms_dataset(groups, labels.numpy())
    print("mechanisms (composition: share of samples):")
    for comp, share in zip(mech["composition"].values, mech["share"].values):
        print(f"  {comp}: {share:.2f}")

    # reliability (§4.1): perturb half of each method's mask, count the predictions that change
    tracer_map = output_attribution(model, samples, settings, device="cpu")
    rel = reliability_dataset(
        model, (samples + 1) / 2, None, tracer_map,
        ReliabilitySettings(methods=("tracer", "gradient", "occlusion", "random_foreground"), trials=3,
                            bootstrap=200, seed=0, from_raw=lambda r: 2 * r - 1,
                            baselines=BaselineSettings(occlusion_patch=(2, 2), occlusion_stride=(2, 2))),
        device="cpu",
    )
    table = reliability_table(rel)
    print(table.to_string())
    return {"accuracy": history["final_test_accuracy"], "nodes": result.nodes, "mechanisms": mech,
            "reliability": rel}


if __name__ == "__main__":
    main()
