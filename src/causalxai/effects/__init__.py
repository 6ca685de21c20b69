"""Treatment effects of hyperparameters on predictions and explanations (paper 000 §2.2)."""
