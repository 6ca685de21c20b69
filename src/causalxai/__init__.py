"""causal-xai: causal inference on how explanations relate to predictions.

Subpackages, one per part of the workflow (a rule's entry module is named after the rule):

* paper 000, the model-zoo study: :mod:`causalxai.zoo` (the Small CNN Zoo network, downloading the
  real zoo or training one many-models-at-once) and :mod:`causalxai.study` (buckets, predictions,
  explanations, effects with intervals and nulls, sensitivity, meta-model);
* paper 004, TRACER: :mod:`causalxai.tracer` (target model, interventions, causal nodes, ACE,
  mechanisms, reliability), :mod:`causalxai.counterfactual` (the autoencoder-GAN and counterfactuals)
  and :mod:`causalxai.compress` (compressed models from the causal nodes);
* shared floors: :mod:`causalxai.data` (image sets, verified downloads), :mod:`causalxai.attribution`
  (saliency methods over a forward function), :mod:`causalxai.plots` (figures),
  :mod:`causalxai.io` (netCDF conventions and provenance), :mod:`causalxai.runtime` (device,
  evaluation mode, batched prediction), :mod:`causalxai.config` and :mod:`causalxai.code`.

The two papers' packages never import each other. Nothing here imports Snakemake.
"""

__version__ = "0.1.0"
