"""causal-xai: causal inference on how explanations relate to predictions.

Subpackages mirror the workflow's stages: :mod:`causalxai.data` (image sets and
downloads), :mod:`causalxai.zoo` (the model zoo: the Small CNN Zoo or a zoo
trained locally, many models at once), :mod:`causalxai.buckets` (accuracy
buckets), :mod:`causalxai.plots` (figures) and :mod:`causalxai.io` (netCDF
conventions). Nothing here imports Snakemake.
"""

__version__ = "0.1.0"
