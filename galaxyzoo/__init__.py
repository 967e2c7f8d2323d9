"""galaxyzoo: learn Galaxy Zoo 2 morphology from galaxy images.

The package reads like the pipeline, one folder per stage: `data` brings the
sample in (download or `data.synth`), ingests the catalogue, crops and stores the
images, splits and streams them; `model` builds the CNN; `tracking` names and
records MLflow runs; `training` fits (`fit`) and tracks (`run`) one training;
`sweep` searches; `registry` evaluates, packages, predicts and promotes. `config`
reads the experiment and sweep files, `system` holds locks, temporary folders,
the process pool and logging. docs/architecture.md has the layers.
"""

__version__ = "0.1.0"
