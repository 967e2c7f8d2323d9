"""MLflow: every name the project logs under, runs, the run config, model URIs, plots and comparisons."""
