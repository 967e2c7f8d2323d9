"""Every name the project logs under in MLflow: tags, metric keys and artifact paths.

Training, sweeps, promote and compare all read and write these, so they live in one
place: renaming a tag here renames it everywhere, and `grep names.` finds each use.
"""

# ------------------------------------------------------------------ artifacts and logged models
MODEL_NAME = "model"  # the training's logged Keras model: runs:/<run_id>/model
PACKAGED_MODEL_NAME = "packaged_model"  # the crop + network pyfunc model logged beside it
# On the packaged logged model: the class its pickle names. A model packaged by an earlier layout of
# the package names another, which this galaxyzoo cannot unpickle, so promote packages it again.
TAG_PACKAGED_CLASS = "galaxyzoo.packaged_class"
# The pyfunc classes a packaged model's pickle names (registry.packaged), as TAG_PACKAGED_CLASS holds them:
# spelled out so promote finds a run's packaged model without importing Keras.
PACKAGED_CLASS = "galaxyzoo.registry.packaged.PackagedModel"
ENSEMBLE_CLASS = "galaxyzoo.registry.packaged.EnsembleModel"
CONFIG_ARTIFACT = "config.yaml"  # the run's resolved experiment config
CSV_LOG = "training_log.csv"  # the seed's per-epoch CSV log
PER_QUESTION_CSV = "per_question_metrics.csv"  # the test split's table per question (train and evaluate)
METRICS_JSON = "metrics.json"  # evaluate's metrics, with the model URI and test size
PLOTS_DIR = "plots"  # a training's figures: the files below, under this folder
TRAINING_CURVES_PLOT = "training_curves.png"  # the seed's model_training.png
PRED_VS_TRUE_DIR = "pred_vs_true"  # one <question id>.png per question
TEST_CROPS_PLOT = "test_crops.png"  # the gallery of test crops with their predictions
# Inside the packaged model: its pyfunc artifacts (PackagedModel.load_context reads them back).
PACKAGED_KERAS_ARTIFACT = "keras_model"
PACKAGED_CONFIG_ARTIFACT = "config"


def member_artifact(index: int, artifact: str) -> str:
    """Inside an ensemble's packaged model: member `index`'s `PACKAGED_KERAS_ARTIFACT` or `PACKAGED_CONFIG_ARTIFACT`."""
    return f"member{index}_{artifact}"

# ------------------------------------------------------------------ tags of a training run
TAG_EXPERIMENT_FILE = "experiment_file"
TAG_CONFIG_HASH = "config_hash"  # every galaxyzoo training run carries it
TAG_CHECKPOINT_DIR = "checkpoint_dir"
# A training or ensemble run, from its creation: the host and the scratch folder its process holds, so a later
# command tells a run a SIGKILL left RUNNING (the folder's lock is free) from one still at work.
TAG_HELD_BY = "galaxyzoo.held_by"
TAG_OUTCOME = "outcome"  # running / completed / failed / interrupted / pruned
TAG_FAILURE = "failure_reason"  # why a failed run failed: the error's one line
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag of a nested run
TAG_RUN_NAME = "mlflow.runName"  # MLflow's own tag of a run's name
TAG_NOTE = "mlflow.note.content"  # the description the UI shows, of a run or of an experiment

TAG_EXPERIMENT_NAME = "experiment"  # the experiment file's `name`
TAG_HEAD = "head"
TAG_LOSS = "loss"
TAG_VERSION_PREFIX = "version."  # + library: the versions the run trained with
TAG_RUNTIME_PREFIX = "runtime."  # + backend, gpus, precision, distribution
TAG_RUNTIME_PRECISION = TAG_RUNTIME_PREFIX + "precision"  # the dtype policy used, with why when not the one asked
PARAM_CALLBACK_PREFIX = "callback."  # + callback: what each built callback was set to
# What the run trained on (the config's own keys, data.source and the rest, are params).
TAG_DATA_KIND_OF_RUN = "data.kind"  # synthetic or real
TAG_DATA_RAW_DIR = "data.raw_dir"
TAG_DATA_SPLIT_ID = "data.split_id"
TAG_DATA_STORE_ID = "data.store_content_id"
TAG_DATA_LEFT_OUT = "data.left_out"  # galaxies of the split without a usable crop
# "true" on a run whose test metrics include test-time augmentation: a training's `evaluate.tta`, or evaluate --tta.
TAG_TTA = "evaluate.tta"
# A warm start (`warm_start.*` in the config, `train --init-from`): tags, not params, so warm and cold runs
# log the same params. Only a warm-started run has them.
TAG_INIT_FROM = "warm_start.init_from"  # the source model's URI as the config gives it
TAG_FREEZE_BLOCKS = "warm_start.freeze_blocks"  # how many of the first conv blocks kept the source's weights
TAG_INIT_FROM_RUN = "warm_start.source_run_id"  # the run that trained the source (an alias may move on later)


def data_part_size(part: str) -> str:
    """The tag with the number of galaxies of `part` (train, val, test) the run used."""
    return f"data.n_{part}"


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
TAG_STUDY_NAME = "study_name"  # on every trial
TAG_RETRY_OF = "retry_of_trial"  # on a trial that retries one a dead worker or a dropped connection ended
TAG_SWEEP_FILE = "sweep_file"  # on the parent: the sweep file's path
TAG_SWEEP_BACKEND = "backend"  # on the parent: optuna or keras-tuner
TAG_BEST_TRIAL = "best_trial_number"  # on the parent: the study's best trial (its metric: best_of(metric))
TAG_BEST_RUN = "best_run_id"  # on the parent: that trial's MLflow run
TAG_BEST_PARAM_PREFIX = "best."  # + searched key: the best trial's value, on the parent
TAG_PLOT_NOTE_PREFIX = "plot_note."  # + one of SWEEP_PLOTS: why the parent lacks that plot
# The parent's params, artifacts and metrics.
SWEEP_PARAM_PREFIX = "sweep."  # + setting (file, storage, n_trials, ...): the first worker's settings
SPACE_PARAM_PREFIX = "space."  # + searched key: its range
SWEEP_FILE_ARTIFACT = "sweep.yaml"  # a copy of the sweep file
BASE_CONFIG_ARTIFACT = "base_config.yaml"  # the base experiment config with the sweep's set: and overrides
TRIALS_TABLE = "trials.csv"  # one row per trial of the study
SWEEP_PLOTS = ("optimization_history", "intermediate_values", "param_importances")  # each <name>.png
TRIALS_METRIC_PREFIX = "trials_"  # + complete / pruned / failed: how many trials of the study ended so

# ------------------------------------------------------------------ tags of promote and the versions it registers
# On the run `mlflow run . -e promote` created:
TAG_PROMOTE = "galaxyzoo.promote"  # the model URI (models:/NAME@ALIAS)
TAG_PROMOTED_VERSION = "promoted_version"  # the registered version it made
TAG_PROMOTED_RUN = "promoted_run_id"  # the training run that won
TAG_SELECTED_BY = "selected_by"  # "<mode> <metric>"; on the version too
# On the registered version, besides TAG_SELECTED_BY and the winning metric under its own key:
TAG_SOURCE_RUN = "source_run_id"  # the run that trained the model
TAG_COMPARED_RUNS = "compared_runs"
TAG_SCOPE = "scope"  # which runs were compared, in words
TAG_DATA_KIND = "data_kind"  # the training run's TAG_DATA_KIND_OF_RUN, copied
TAG_SPLIT_ID = "split_id"  # the training run's TAG_DATA_SPLIT_ID, copied

# ------------------------------------------------------------------ tags of an ensemble run (`galaxyzoo ensemble`)
TAG_ENSEMBLE = "galaxyzoo.ensemble"  # how many members it averages: what tells an ensemble run from a training
TAG_ENSEMBLE_MEMBERS = "ensemble.members"  # the members' run ids, comma-separated, best first
# It also carries TAG_SELECTED_BY and TAG_SCOPE (how and among which runs its members were picked).

# ------------------------------------------------------------------ params of an `mlflow run . -e evaluate` run
PARAM_MODEL_URI = "model_uri"  # the model scored
PARAM_SOURCE_RUN = TAG_SOURCE_RUN  # the run that trained it, under the version tag's name
PARAM_N_TEST = "n_test"  # galaxies in the test split

# ------------------------------------------------------------------ experiment tags
# How the MLflow UI opens an experiment, and the value for model training
# (the UI's ExperimentKind enum: genai_development, custom_model_development, ...).
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# ------------------------------------------------------------------ metric keys
# Per-epoch series read back from MLflow for the training-curves plot.
CURVE_KEYS = ("loss", "val_loss", "r2_flat", "val_r2_flat", "rmse", "val_rmse", "lr")
LOG10_LR = "log10_lr"  # beside `lr`: MLflow's charts have no log axis
EPOCH_SECONDS = "epoch_seconds"  # each epoch's wall time (training and validation)
# A final metric is logged under its evaluation key (`metrics.evaluate_arrays`: "rmse",
# "rmse_t01_smooth_or_features", ...) with one of these prefixes.
TEST_PREFIX = "test_"  # scored on the test split (train and evaluate)
VAL_PREFIX = "val_"  # scored on the validation split (Keras's own prefix in training; an ensemble's too)
BEST_PREFIX = "best_"  # the best value of a per-epoch series, or a sweep's best trial
TTA_SUFFIX = "_tta"  # the same metric, predicted with test-time augmentation (`model.tta`)
# What `train.refit_head` did (`training.head_refit`): the validation loss before and after, its epochs and time.
HEAD_REFIT_METRICS = ("head_refit_val_loss_before", "head_refit_val_loss", "head_refit_epochs",
                      "head_refit_seconds")

# What `train.calibrate_head` did (`training.calibration`): the validation votes' mean negative log-likelihood
# per galaxy before and after, and each question's factor (`calibration_scale`).
HEAD_CALIBRATION_NLL_BEFORE, HEAD_CALIBRATION_NLL = "head_calibration_val_nll_before", "head_calibration_val_nll"


def calibration_scale(question_id: str) -> str:
    """The metric key of a question's calibration factor: `t08` -> `head_calibration_scale_t08`."""
    return f"head_calibration_scale_{question_id}"


def on_test_split(key: str) -> str:
    """The metric key of the test split's value of `key`: `rmse` -> `test_rmse`."""
    return TEST_PREFIX + key


def on_val_split(key: str) -> str:
    """The metric key of the validation split's value of `key`: `rmse` -> `val_rmse`."""
    return VAL_PREFIX + key


def with_tta(key: str) -> str:
    """The metric key of `key` predicted with test-time augmentation: `test_rmse` -> `test_rmse_tta`."""
    return key + TTA_SUFFIX


def best_of(key: str) -> str:
    """The metric key of the best value of `key`: `val_rmse` -> `best_val_rmse`."""
    return BEST_PREFIX + key
