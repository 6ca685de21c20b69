"""The model-zoo study (paper 000): accuracy buckets, the zoo's predictions and the class permutation
of the direct effect, the zoo's explanations, treatment effects with their intervals and nulls, the
sensitivity report, the kernel figures' data and the meta-model (App. A.2).

One module per rule: :mod:`~causalxai.study.buckets`, :mod:`~causalxai.study.predictions`,
:mod:`~causalxai.study.explain` (``explain_shard``/``explain_gather``), :mod:`~causalxai.study.effects`,
:mod:`~causalxai.study.effects_sensitivity`, :mod:`~causalxai.study.kernel_figures`,
:mod:`~causalxai.study.meta_model`; the effect estimators they share are in
:mod:`causalxai.study.estimators`. Nothing here imports TRACER's packages.
"""
