"""Figures (seaborn, PNG). Each function takes result datasets and a path."""
