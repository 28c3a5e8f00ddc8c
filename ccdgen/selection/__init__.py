"""Model selection: cross-validated hyperparameter sweeps."""
