"""Every name the project logs under in MLflow: tags, metric keys and artifact paths.

Training, sweeps, promote and compare all read and write these, so they live in one
place: renaming a tag here renames it everywhere, and `grep names.` finds each use.
"""

# ------------------------------------------------------------------ artifacts and logged models
MODEL_NAME = "model"  # the training's logged Keras model: runs:/<run_id>/model
PACKAGED_MODEL_NAME = "packaged_model"  # the crop + network pyfunc model logged beside it
CONFIG_ARTIFACT = "config.yaml"  # the run's resolved experiment config
CSV_LOG = "training_log.csv"  # the seed's per-epoch CSV log

# ------------------------------------------------------------------ tags of a training run
TAG_EXPERIMENT_FILE = "experiment_file"
TAG_CONFIG_HASH = "config_hash"  # every galaxyzoo training run carries it
TAG_CHECKPOINT_DIR = "checkpoint_dir"
TAG_OUTCOME = "outcome"  # running / completed / failed / interrupted / pruned
TAG_FAILURE = "failure_reason"  # why a failed run failed: the error's one line
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag of a nested run

# ------------------------------------------------------------------ tags of sweeps and their trials
TAG_SWEEP = "galaxyzoo.sweep"  # on the parent run: the study name
TAG_SWEEP_KEY = "galaxyzoo.sweep_key"  # on the parent and its trials: how workers find the study's one parent
TAG_WORKER_PREFIX = "galaxyzoo.worker."  # + host-pid: that worker's JSON entry, refreshed every heartbeat
TAG_RECOVERED = "galaxyzoo.recovered"  # why a worker took over a parent left RUNNING by dead workers
TAG_REOPENED = "galaxyzoo.reopened"  # a finished parent reopened to extend its study
TAG_CLOSED_WHY = "galaxyzoo.closed_why"  # why a run was closed FAILED by someone other than its worker
TAG_PARENT_OF_WORKER = "galaxyzoo.sweep_parent"  # on `mlflow run`'s own run when the study already had a parent
TAG_TRIAL_NUMBER = "trial_number"
TAG_TRIAL_STATE = "trial_state"
TAG_TRIAL_VALUES = "trial_values"  # a trial's searched values, short
TAG_PROMOTE = "galaxyzoo.promote"  # on the run `mlflow run . -e promote` created: the model URI

# ------------------------------------------------------------------ experiment tags
# How the MLflow UI opens an experiment, and the value for model training
# (the UI's ExperimentKind enum: genai_development, custom_model_development, ...).
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
TAG_EXPERIMENT_NOTE = "mlflow.note.content"  # the experiment's description in the UI

# ------------------------------------------------------------------ metric keys
# Per-epoch series read back from MLflow for the training-curves plot.
CURVE_KEYS = ("loss", "val_loss", "r2_flat", "val_r2_flat", "rmse", "val_rmse", "lr")
