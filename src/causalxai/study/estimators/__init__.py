"""The treatment-effect estimators of paper 000 (eq. (1)-(4)): kernels and bandwidths, the weighted
engine with its bootstrap and permutation columns, treatment groups and placebos, correlations,
resampling, and the CATE/ATE summary. Used by :mod:`causalxai.study.effects` and its neighbours."""
