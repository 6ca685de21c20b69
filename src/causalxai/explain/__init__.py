"""Saliency explanations of many zoo models at once (paper 000 §3.1, App. A.3)."""
