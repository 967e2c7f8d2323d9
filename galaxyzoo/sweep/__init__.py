"""Sweeps: workers that share an Optuna study (or a keras-tuner search), their trials and the parent run.

`worker.run_sweep` is the entry point; its module docstring maps the others.
"""
