"""Sweeps: sweep files (parsing, validation, sampling), and Optuna sweeps as nested MLflow runs."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.config.sweep_spec import choice_labels, geometric, load_sweep
from galaxyzoo.sweep.keras_tuner_backend import KerasTunerSuggest
from galaxyzoo.sweep.optuna_backend import OptunaSuggest
from stores import seeded_uri

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "experiments" / "quickstart.yaml"


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"base: {BASE}\n" + text)
    return path


def _client(folder: Path):
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def _children(client, parent_id: str) -> list:
    experiment = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_id}'")


# ---------------------------------------------------------------- sweep files


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweep_files_load(path):
    spec = load_sweep(path)
    assert spec.params and spec.base.is_file()


def test_architecture_sweep_searches_what_the_issue_lists():
    keys = {p.name for p in load_sweep(REPO / "sweeps" / "architecture.yaml").params}
    assert {"model.conv_filters", "model.conv_dropout", "model.dense_dropout", "model.batch_norm", "model.head",
            "train.loss", "train.learning_rate", "train.batch_size", "train.augment.enabled",
            # what issue 13 names for the underfitting improved model: capacity and the schedule
            "model.convs_per_block", "train.callbacks.cosine_decay.enabled"} <= keys


def test_defaults_and_aliases(tmp_path):
    spec = load_sweep(_write(tmp_path, "params:\n  learning_rate: {low: 1e-4, high: 1e-2, log: true}\n"))
    assert spec.name == "s" and spec.study.metric == "val_rmse" and spec.study.direction == "minimize"
    (param,) = spec.params
    assert (param.name, param.kind, param.low, param.log) == ("train.learning_rate", "float", 1e-4, True)


@pytest.mark.parametrize(
    "text, message",
    [
        ("params:\n  train.learning_rat: {low: 0.1, high: 0.2}\n", "did you mean 'train.learning_rate'"),
        ("params:\n  train.learning_rate: {low: 0.2, high: 0.1}\n", "low (0.2) must be less than high (0.1)"),
        ("params:\n  train.learning_rate: {low: 0, high: 0.1, log: true}\n", "log range needs low > 0"),
        ("params:\n  train.learning_rate: {low: 0.1, high: 0.2, lg: true}\n",
         "unknown key 'params.train.learning_rate.lg'"),
        ("params:\n  model.conv_dropout: {low: 0.0, high: 1.0}\n", "model.conv_dropout: must be in [0, 1)"),
        ("params:\n  train.batch_size: {low: 0.5, high: 64.0}\n", "expected an integer"),
        ("params:\n  model.head: {choices: []}\n", "expected a non-empty list"),
        ("params:\n  model.head: {choices: [sigmoid, sigmoid]}\n", "listed more than once: sigmoid"),
        ("params:\n  model.head: {choices: [sigmoid, tanh]}\n", "the value tanh makes an invalid experiment"),
        ("params:\n  train.epochs: {low: 2, high: 9, step: 2}\n", "not a multiple of step"),
        ("params:\n  data.source: {choices: [synthetic]}\n", "not a hyperparameter"),
        ("params:\n  model.conv_filters: {type: geometric, start: {choices: [16]}, length: {low: 2, high: 9}}\n",
         "shrink a 106px image"),
        ("params:\n  model.conv_filters: {type: geometric, start: {low: 0.5, high: 2.0}, length: {low: 1, high: 2}}\n",
         "expected integer low/high or integer choices"),
        ("params:\n  model.dense_units: {choices: [[64], [64, 32]]}\n", "one dropout rate per hidden dense layer"),
        ("params: {}\n", "name at least one experiment key"),
        ("studdy: {}\nparams:\n  model.head: {choices: [sigmoid]}\n", "did you mean 'study'"),
        ("study: {metric: val_acc}\nparams:\n  model.head: {choices: [sigmoid]}\n", "study.metric: expected one of"),
        ("study: {pruner: median, pruner_params: {warmup: 2}}\nparams:\n  model.head: {choices: [sigmoid]}\n",
         "unknown key 'study.pruner_params.warmup'"),
        ("study: {n_trials: 0}\nparams:\n  model.head: {choices: [sigmoid]}\n", "n_trials: must be at least 1"),
        # keras-tuner reads 0 as "no seed" and draws a random one: a seeded sweep would not repeat
        ("keras_tuner: {seed: 0}\nparams:\n  model.head: {choices: [sigmoid]}\n", "keras_tuner.seed: must be at least 1"),
        ("study: {metric: val_loss}\nparams:\n  train.loss: {choices: [mse, vote-weighted-mse]}\n",
         "val_loss is not comparable between the searched losses"),
        ("params:\n  train.refit_head: {choices: [false, true]}\n", "train.refit_head: cannot be searched"),
        ("set: {model.head: dirichlet, train.loss: dirichlet-learned}\nparams:\n"
         "  train.calibrate_head: {choices: [false, true]}\n", "train.calibrate_head: cannot be searched"),
        ("params:\n  model.dirichlet_components: {choices: [1, 2]}\n",
         "only the 'dirichlet' head has one (model.head is 'sigmoid')"),
        ("set: {train.epoch: 2}\nparams:\n  model.head: {choices: [sigmoid]}\n", "did you mean 'train.epochs'"),
        ("set: {data.val_size: 0.0}\nparams:\n  model.head: {choices: [sigmoid]}\n", "needs a validation set"),
        # one key twice through its alias: the second range would be dropped without a word
        ("params:\n  learning_rate: {low: 1e-4, high: 1e-3}\n  train.learning_rate: {low: 1e-2, high: 1e-1}\n",
         "params.train.learning_rate: listed twice (as 'learning_rate' and 'train.learning_rate')"),
        ("set: {train.learning_rate: 0.5}\nparams:\n  learning_rate: {low: 1e-4, high: 1e-2}\n",
         "set.train.learning_rate: is also searched in params"),
        # accepted by the samplers' constructors, failing only when they sample
        ("study: {sampler: tpe, sampler_params: {n_startup_trials: 'x'}}\n"
         "params:\n  model.head: {choices: [sigmoid]}\n", "study.sampler_params: TypeError: "),
        ("study: {sampler: tpe, sampler_params: {gamma: 3, n_startup_trials: 1}}\n"
         "params:\n  model.head: {choices: [sigmoid]}\n",
         "study.sampler_params: TypeError: 'int' object is not callable"),
    ],
)
def test_bad_sweep_files_name_the_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(GalaxyZooError) as err:
        load_sweep(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(GalaxyZooError, match="sweep file not found"):
        load_sweep(tmp_path / "nope.yaml")
    (tmp_path / "s.yaml").write_text("base: nope.yaml\nparams:\n  model.head: {choices: [sigmoid]}\n")
    with pytest.raises(GalaxyZooError, match="base: file not found"):
        load_sweep(tmp_path / "s.yaml")


def test_optuna_and_keras_tuner_sample_the_same_config_values(tmp_path):
    import keras_tuner
    import optuna

    spec = load_sweep(REPO / "sweeps" / "architecture.yaml")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    values = spec.sample(OptunaSuggest(trial))
    assert set(values) == {p.name for p in spec.params}
    filters = values["model.conv_filters"]
    assert filters == geometric(filters[0], len(filters), 2) and 2 <= len(filters) <= 4
    assert isinstance(values["model.dense_units"], list)  # a list choice comes back as a list, not its label
    cfg = spec.trial_config(values, ["train.epochs=1"])
    assert cfg.train.epochs == 1 and list(cfg.model.conv_filters) == filters
    # one dropout rate fills every hidden dense layer, however many the trial has
    assert list(cfg.model.dense_dropout) == [values["model.dense_dropout"]] * len(cfg.model.dense_units)

    hp = keras_tuner.HyperParameters()
    kt_values = spec.sample(KerasTunerSuggest(hp))
    assert set(kt_values) == set(values)
    assert set(spec.distributions()) == {h.name for h in hp.space}
    spec.trial_config(kt_values)  # valid, with keras-tuner's defaults


def test_choice_labels_keep_scalars_and_name_lists():
    assert choice_labels([16, 32]) == (16, 32)
    assert choice_labels([[128, 64], [256]]) == ("[128, 64]", "[256]")
    assert choice_labels([1, "a"]) == ("1", "a")  # keras-tuner needs one type


def test_space_hash_follows_space_and_base_not_tracking(tmp_path):
    spec = load_sweep(_write(tmp_path, "params:\n  model.head: {choices: [sigmoid, softmax-per-question]}\n"))
    assert spec.space_hash() == spec.space_hash(["tracking.experiment_name=other"])
    assert spec.space_hash() != spec.space_hash(["train.epochs=3"])


# ---------------------------------------------------------------- a sweep as MLflow runs


def test_sweep_records_parent_and_one_nested_run_per_trial(finished_sweep, tiny_sweep_file):
    import optuna

    folder, result = finished_sweep
    client = _client(folder)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep.n_trials"] == "2" and parent.data.params["sweep.metric"] == "val_rmse"
    assert parent.data.params["space.model.head"] == "one of sigmoid, softmax-per-question"
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"sweep.yaml", "base_config.yaml", "trials.csv", "optimization_history.png",
            "param_importances.png"} <= artifacts

    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{folder / 'optuna.db'}")
    trials = study.get_trials()
    assert len(trials) == 2 and result.finished == 2 and result.trials_run == 2
    children = _children(client, result.parent_run_id)
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == [t.number for t in trials]
    by_number = {int(r.data.tags["trial_number"]): r for r in children}
    for trial in trials:
        run = by_number[trial.number]
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.data.tags["trial_state"] == trial.state.name.lower()
        # the same logging as a training run: config params, per-epoch and test metrics, the model
        assert run.data.params["model.head"] == trial.params["model.head"]
        assert float(run.data.params["train.learning_rate"]) == pytest.approx(trial.params["train.learning_rate"])
        assert {"val_rmse", "loss", "test_rmse"} <= set(run.data.metrics)
    best = min((t for t in trials if t.value is not None), key=lambda t: t.value)
    assert result.best_value == pytest.approx(best.value)
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(best.value)
    # the parent's row fills the trials' column, and names say what the runs are
    assert parent.data.metrics["val_rmse"] == pytest.approx(best.value)
    assert parent.info.run_name == "sweep tiny_sweep"
    for number, run in by_number.items():
        assert run.info.run_name in (f"tiny_sweep trial {number}", f"tiny_sweep trial {number} (pruned)")
        head = run.data.params["model.head"]
        assert f"model.head={head}" in run.data.tags["trial_values"]
        note = run.data.tags["mlflow.note.content"]
        assert note.startswith(f"Sweep tiny_sweep, trial {number}: train.learning_rate=") and head in note
    assert parent.data.tags["best_run_id"] == best.user_attrs["mlflow_run_id"] == result.best_run_id
    # the description links the best trial's page (the tag shows as cut, unlinked text), once
    note = parent.data.tags["mlflow.note.content"]
    best_run = by_number[best.number]
    link = f"[{best_run.info.run_name}](#/experiments/{best_run.info.experiment_id}/runs/{result.best_run_id})"
    assert note.startswith("optuna sweep tiny_sweep of ") and note.endswith(f"\n\nBest trial so far: {link} "
                                                                           f"(val_rmse {best.value:.5g}).")
    assert note.count("Best trial so far") == 1
    # the objective is the trial's final val_rmse, the value `promote` and `compare` rank by
    assert by_number[best.number].data.metrics["val_rmse"] == pytest.approx(best.value)


def test_trials_table_lists_every_trial(finished_sweep):
    import pandas as pd

    folder, result = finished_sweep
    path = _client(folder).download_artifacts(result.parent_run_id, "trials.csv", str(folder))
    table = pd.read_csv(path)
    assert list(table["number"]) == [0, 1]
    assert set(table["state"]) <= {"complete", "pruned"}
    assert {"value", "duration_s", "mlflow_run_id", "param:model.head", "param:train.learning_rate"} <= set(table)
    assert json.loads(table.loc[0, "worker"])["pid"] > 0  # the worker's record as JSON, not a Python repr


def test_trials_table_spells_booleans_as_the_params_do():
    import optuna

    from galaxyzoo.sweep.summary import trials_table

    trial = optuna.trial.create_trial(params={"model.batch_norm": True}, value=0.3, user_attrs={"w": {"pid": 7}},
                                      distributions={"model.batch_norm": optuna.distributions.CategoricalDistribution(
                                          [True, False])})
    row = trials_table([trial]).iloc[0]
    assert row["param:model.batch_norm"] == "true" and json.loads(row["w"]) == {"pid": 7}


def test_restarted_sweep_continues_the_study(tiny_sweep_file, tiny_workdir, tmp_path):
    import optuna

    from galaxyzoo.sweep.worker import run_sweep

    uri = [f"tracking.tracking_uri={seeded_uri(tmp_path)}"]
    first = run_sweep(tiny_sweep_file, n_trials=1, overrides=uri, progress=False)
    second = run_sweep(tiny_sweep_file, n_trials=2, overrides=uri, progress=False)
    again = run_sweep(tiny_sweep_file, n_trials=2, overrides=uri, progress=False)
    assert (first.trials_run, second.trials_run, again.trials_run) == (1, 1, 0)
    study = optuna.load_study(study_name=first.study_name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.number for t in study.get_trials()] == [0, 1]
    # one study, one parent: a restart reopens it and nests its trials there
    assert first.parent_run_id == second.parent_run_id == again.parent_run_id
    client = _client(tmp_path)
    parent = client.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED" and "reopened by worker" in parent.data.tags["galaxyzoo.reopened"]
    assert sorted(r.data.tags["trial_number"] for r in _children(client, first.parent_run_id)) == ["0", "1"]
    assert parent.data.metrics["trials_complete"] + parent.data.metrics["trials_pruned"] == 2


def test_a_study_refuses_another_search_space(tiny_sweep_file, tmp_path):
    import optuna

    from galaxyzoo.sweep.worker import run_sweep

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="taken", storage=storage).set_user_attr("space_hash", "0123456789ab")
    with pytest.raises(GalaxyZooError, match="'taken' was started from another search space"):
        run_sweep(tiny_sweep_file, study_name="taken", storage=storage,
                  overrides=[f"tracking.tracking_uri={seeded_uri(tmp_path)}"], progress=False)


def test_pruned_trial_ends_its_run_as_pruned(tiny_sweep_file, tmp_path):
    """Trial 0 (softmax head) sets the median; trial 1 (sigmoid head, whose untrained outputs sit
    far from the targets) is worse after its first epoch and is pruned there."""
    import optuna

    from galaxyzoo.sweep.worker import run_sweep

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="prune", storage=storage)
    study.enqueue_trial({"train.learning_rate": 0.01, "model.head": "softmax-per-question"})
    study.enqueue_trial({"train.learning_rate": 0.001, "model.head": "sigmoid"})
    result = run_sweep(tiny_sweep_file, n_trials=2, epochs=3, study_name="prune", storage=storage,
                       overrides=[f"tracking.tracking_uri={seeded_uri(tmp_path)}"], progress=False)
    trials = optuna.load_study(study_name="prune", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert list(trials[1].intermediate_values) == [1]
    runs = {int(r.data.tags["trial_number"]): r for r in _children(_client(tmp_path), result.parent_run_id)}
    assert runs[1].data.tags["trial_state"] == "pruned" and runs[1].data.tags["outcome"] == "pruned"
    # pruned reads as pruned, not as a failure (KILLED shows a red cross in the MLflow UI)
    assert runs[1].info.status == "FINISHED" and runs[1].info.run_name == "prune trial 1 (pruned)"
    assert "Pruned after epoch 1: val_rmse=" in runs[1].data.tags["mlflow.note.content"]
    assert len(_client(tmp_path).get_metric_history(runs[1].info.run_id, "val_rmse")) == 1
    assert runs[0].data.tags["trial_state"] == "complete" and runs[0].info.status == "FINISHED"
    assert result.finished == 2


def test_failing_trials_are_recorded_and_stop_the_worker(tiny_sweep_file, tmp_path):
    """A trial config the data cannot feed fails; three in a row stop the worker with one message."""
    import optuna

    from galaxyzoo.sweep.worker import run_sweep

    with pytest.raises(GalaxyZooError, match="3 trials failed in a row"):
        run_sweep(tiny_sweep_file, overrides=[f"tracking.tracking_uri={seeded_uri(tmp_path)}",
                                              "train.loss_params={concentration: 5}"], progress=False)
    trials = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{tmp_path / 'optuna.db'}").get_trials()
    assert [t.state.name for t in trials] == ["FAIL"] * 3
    assert "concentration" in trials[0].user_attrs["error"]


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["sweep", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "sweep file not found" in capsys.readouterr().err
    assert main(["sweep", "--config", str(REPO / "sweeps" / "quickstart.yaml"), "--n-trials", "many"]) == 2
    assert "--n-trials: expected a whole number" in capsys.readouterr().err
    assert main(["sweep", "--config", str(REPO / "sweeps" / "quickstart.yaml"), "--backend", "grid"]) == 2
    assert "--backend: expected one of optuna, keras-tuner" in capsys.readouterr().err
    assert main(["sweep", "--config", str(REPO / "sweeps" / "quickstart.yaml"), "--heartbeat", "0"]) == 2
    assert "--heartbeat: expected at least 1 second, got 0" in capsys.readouterr().err
    # it names a folder (keras-tuner's state) and runs: no way out of data.workdir
    assert main(["sweep", "--config", str(REPO / "sweeps" / "quickstart.yaml"), "--study-name", "../../out"]) == 2
    assert "--study-name: must be letters, digits, '.', '_' or '-'" in capsys.readouterr().err


@pytest.mark.parametrize("storage, message", [
    ("garbage", "--storage: expected a database URL (sqlite:///optuna.db, postgresql://...) or journal:///FILE, "
                "got 'garbage'"),
    ("journal:///", "--storage journal:///: expected journal:///PATH to a log file"),
    ("postgresql://nobody@127.0.0.1:1/x", "nobody@127.0.0.1:1/x: cannot connect: "),
    # filelock would wait for ever on a lock file that cannot be made
    ("sqlite:////proc/optuna.db",
     "--storage sqlite:////proc/optuna.db: cannot create its lock file /proc/optuna.db.lock"),
])
def test_bad_storage_is_one_line_and_leaves_no_run(tiny_sweep_file, tmp_path, capsys, storage, message):
    uri = seeded_uri(tmp_path)
    code = main(["sweep", "--config", str(tiny_sweep_file), "--storage", storage,
                 "--set", f"tracking.tracking_uri={uri}"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("galaxyzoo: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    client = _client(tmp_path)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


@pytest.mark.slow
def test_mlflow_run_sweep_then_promote(tiny_sweep_file, tmp_path, capsys):
    """`mlflow run . -e sweep`: the run mlflow creates is the parent and the Optuna DB lands beside
    mlflow.db; `mlflow run . -e promote` then registers the best trial and tags its own run."""
    import os

    env = {**os.environ, "MLFLOW_TRACKING_URI": seeded_uri(tmp_path),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def mlflow_run(entry_point: str, *params: str) -> None:
        # --storage-dir: where `mlflow run` makes its folder for `path` params (else a new one in /tmp, left there)
        command = [str(Path(sys.executable).parent / "mlflow"), "run", str(REPO), "-e", entry_point,
                   "--env-manager", "local", "--experiment-name", "sweeps", "--storage-dir", str(tmp_path)]
        for param in params:
            command += ["-P", param]
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]

    mlflow_run("sweep", f"config={tiny_sweep_file}", "n_trials=2", "epochs=1")
    client = _client(tmp_path)
    experiment = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "galaxyzoo.sweep" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags.get("mlflow.project.entryPoint") == "sweep"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["trial_number"] for r in children) == ["0", "1"]
    assert parents[0].data.params["sweep.storage"] == f"sqlite:///{tmp_path / 'optuna.db'}"

    mlflow_run("promote", "experiment_name=sweeps")
    best = min(children, key=lambda r: r.data.metrics["val_rmse"])
    assert client.get_model_version_by_alias("galaxyzoo-cnn", "champion").run_id == best.info.run_id
    promote_runs = client.search_runs([experiment.experiment_id], "tags.`mlflow.project.entryPoint` = 'promote'")
    assert promote_runs[0].data.tags["galaxyzoo.promote"] == "models:/galaxyzoo-cnn@champion"
    capsys.readouterr()
    assert main(["compare", "--experiment-name", "sweeps", "--format", "csv",
                 "--tracking-uri", env["MLFLOW_TRACKING_URI"]]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(rows) == 2  # the trials; neither the sweep's parent run nor the promote run trains anything


# ---------------------------------------------------------------- cluster recipes (deploy/)


def _parses_as_sweep(args: list[str]) -> None:
    """`galaxyzoo sweep ARGS` parses: every option exists (argparse exits on an unknown one)."""
    from galaxyzoo.cli import build_parser

    assert build_parser().parse_args(["sweep", *args]).command == "sweep"


def test_kubernetes_recipe_runs_a_parallel_job_of_real_sweep_workers():
    import yaml

    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "k8s" / "sweep.yaml").read_text()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Service", "postgres"), ("Service", "mlflow"), ("Job", "galaxyzoo-sweep")} <= kinds
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert job["spec"]["parallelism"] > 1
    (worker,) = job["spec"]["template"]["spec"]["containers"]
    assert worker["command"] == ["galaxyzoo", "sweep"]
    _parses_as_sweep(worker["args"])
    assert load_sweep(REPO / worker["args"][worker["args"].index("--config") + 1].removeprefix("/app/")).params
    env = {e["name"]: e for e in worker["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000" and "secretKeyRef" in str(env["PGPASSWORD"])
    (server,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow"]
    command = " ".join(server["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--artifacts-destination" in command and "mlflow:5000" in command  # the Host the workers send


def test_slurm_recipe_is_valid_bash_running_a_sweep_worker_per_array_task():
    script = REPO / "deploy" / "slurm" / "sweep.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "#SBATCH --array=" in text and "#SBATCH --requeue" in text
    command = text[text.index("exec galaxyzoo sweep"):].replace("\\\n", " ")
    _parses_as_sweep(shlex.split(command)[3:])
    assert load_sweep(REPO / "sweeps" / "architecture.yaml").params  # the default SWEEP


def test_tags_spell_values_as_the_params_do_and_overrides_keep_the_one_that_wins():
    from galaxyzoo.sweep.parent import _last_per_key
    from galaxyzoo.sweep.trial import run_name, shown

    assert [shown(v) for v in (True, False, 0.0012345678, "sigmoid", [128, 64])] == [
        "true", "false", "0.001235", "sigmoid", "[128, 64]"]  # a filter copied from a tag matches the param
    assert _last_per_key(["train.epochs=4", "data.synthetic_n=60", "train.epochs=1"]) == [
        "data.synthetic_n=60", "train.epochs=1"]
    assert run_name("prune", 3) == "prune trial 3" and run_name("prune", 3, pruned=True) == "prune trial 3 (pruned)"
