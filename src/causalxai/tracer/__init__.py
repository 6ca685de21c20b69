"""TRACER (paper 004): interventions, CKA layer groups, causal effects, mechanisms, compression."""
