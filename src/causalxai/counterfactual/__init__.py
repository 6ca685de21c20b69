"""Counterfactuals (paper 004 §3.5, App. C, F): a conditional autoencoder-GAN, candidate selection, metrics
and TRACER on the results."""
