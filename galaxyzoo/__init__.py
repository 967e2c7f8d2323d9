"""galaxyzoo: learn Galaxy Zoo 2 morphology from galaxy images.

The package reads like the pipeline: `synth`/`download` bring data in, `ingest`
builds the catalogue table, `crop`/`prepare` cut the images, `data` streams
tensors, `model` builds the CNN, `train` runs it under MLflow tracking, `sweep`
searches, `promote` registers the best model and `predict` uses it.
"""

__version__ = "0.1.0"
