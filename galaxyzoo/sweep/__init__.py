"""Sweeps: workers that share an Optuna study (or a keras-tuner search), their trials and the parent run."""
