"""Training: fit a model (no MLflow), and one tracked, resumable run around it."""
