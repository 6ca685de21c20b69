"""Compressed models built from TRACER's causal nodes: construction, retraining and cost
(paper 004 §4.3, Tables 1-2)."""
