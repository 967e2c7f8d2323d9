"""`galaxyzoo ensemble`: the mean of the best runs, scored and packaged as one run that promote registers."""

import base64
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from galaxyzoo.cli import main


@pytest.fixture
def sweep_store(finished_sweep, tmp_path):
    """A copy of the finished sweep's store (its artifacts stay where they are): ensemble runs
    logged here do not show up in the other tests' listings of the sweep's experiment."""
    import mlflow

    folder, result = finished_sweep
    shutil.copyfile(folder / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri, mlflow.MlflowClient(uri), result


def _images(real_images_dir, n=3) -> pd.DataFrame:
    files = sorted(real_images_dir.glob("*.jpg"))[:n]
    return pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in files]})


def _packaged(client, run_id):
    """A training run's own packaged model, loaded."""
    from galaxyzoo.registry import packaged
    from galaxyzoo.tracking import names
    from galaxyzoo.tracking.model_uri import find_packaged_model

    return packaged.load_packaged(find_packaged_model(client, client.get_run(run_id), names.PACKAGED_CLASS))


def test_an_ensemble_of_one_equals_its_member(sweep_store, real_images_dir, tmp_path):
    from galaxyzoo.registry import packaged
    from galaxyzoo.training.ensemble import ensemble

    uri, client, sweep = sweep_store
    result = ensemble(client, sweep_run=sweep.parent_run_id, top_k=1, progress=False)
    assert result.members == (sweep.best_run_id,)  # ranked by val_rmse, as promote ranks
    member, run = client.get_run(sweep.best_run_id), client.get_run(result.run_id)
    assert run.info.run_name == "ensemble of 1" and run.info.status == "FINISHED"
    assert run.data.tags["galaxyzoo.ensemble"] == "1" and run.data.tags["ensemble.members"] == sweep.best_run_id
    assert run.data.tags["data.split_id"] == member.data.tags["data.split_id"]
    link = f"[`{sweep.best_run_id}`](#/experiments/{member.info.experiment_id}/runs/{sweep.best_run_id})"
    assert f"{link} ({member.info.run_name}, val_rmse " in run.data.tags["mlflow.note.content"]
    # its config.yaml says whose config it is, not only the trial's own name and description
    from galaxyzoo.tracking.run_config import download_run_config

    config = download_run_config(client, result.run_id, tmp_path).read_text()
    assert config.startswith(f"# The config of this ensemble's best member, run {sweep.best_run_id} "
                             f"({member.info.run_name})")
    (tmp_path / "m").mkdir()
    assert config.split("\n", 3)[3] == download_run_config(client, sweep.best_run_id, tmp_path / "m").read_text()
    # the same test metrics as the training run, from the same code
    test_keys = {k for k in member.data.metrics if k.startswith("test_")}
    assert test_keys <= set(run.data.metrics)
    for key in ("test_rmse", "test_r2_flat", "test_loss", "test_rmse_cumulative"):
        assert run.data.metrics[key] == pytest.approx(member.data.metrics[key], abs=1e-5), key
    frame = _images(real_images_dir)
    model = packaged.load_packaged(result.model_uri)
    assert isinstance(model.unwrap_python_model(), packaged.EnsembleModel)
    ours, theirs = model.predict(frame), _packaged(client, sweep.best_run_id).predict(frame)
    np.testing.assert_allclose(ours[packaged.ANSWER_COLUMNS], theirs[packaged.ANSWER_COLUMNS], atol=1e-6)
    assert list(ours["most_likely_path"]) == list(theirs["most_likely_path"])


def test_an_ensemble_of_two_averages_and_promote_registers_it(sweep_store, real_images_dir, capsys):
    from galaxyzoo.registry import packaged

    uri, client, sweep = sweep_store
    assert main(["ensemble", "--sweep-run", sweep.parent_run_id, "--top-k", "5", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 from sweep run" in out
    run_id = out.split("logged as run ")[1].split(":")[0]
    members = client.get_run(run_id).data.tags["ensemble.members"].split(",")
    assert members[0] == sweep.best_run_id and len(set(members)) == 2

    assert main(["promote", "--run", run_id, "--model-name", "ensemble-test", "--tracking-uri", uri]) == 0
    version = client.get_model_version_by_alias("ensemble-test", "champion")
    assert version.run_id == run_id and f"`{members[1]}`" in version.description  # names its members
    frame = _images(real_images_dir)
    loaded = packaged.load_packaged("models:/ensemble-test@champion")
    registered = loaded.predict(frame)[packaged.ANSWER_COLUMNS].to_numpy()
    # each member's network, loaded from the ensemble's own artifacts, on the same crops
    inner = loaded.unwrap_python_model()
    images = [base64.b64decode(v) for v in frame["image"]]
    each = [packaged.predict_images(m, images, inner.size, inner.channels)[packaged.ANSWER_COLUMNS].to_numpy()
            for m in inner.network.members]
    assert len(each) == 2 and not np.allclose(each[0], each[1])  # two different networks...
    np.testing.assert_allclose(registered, np.mean(each, axis=0), atol=1e-6)  # ...and their mean

    # compare lists the ensemble beside the trainings, with the columns of the trainings alone
    from galaxyzoo.tracking import compare

    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id).name
    _, runs = compare.runs_of(client, experiment_name=experiment)
    with_it, without = compare.runs_table(runs), compare.runs_table([r for r in runs if r.info.run_id != run_id])
    assert run_id in set(with_it["run_id"]) and "model.head" in with_it.columns  # searched: differs
    # only its own extra metrics (val_mse, ...) add columns, never a param all the trainings share
    assert all(c.startswith(("val_", "test_")) for c in set(with_it.columns) ^ set(without.columns))

    # members trained on another split cannot be scored on one test split: one line, exit 2
    client.set_tag(members[1], "data.split_id", "another-split")
    assert main(["ensemble", "--runs", *members, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "".join(err)
    assert err[-1].startswith("galaxyzoo: error: ensemble: run ") and "must share the data split" in err[-1]


def test_a_ranked_choice_leaves_dirichlet_runs_out_and_says_how_many_members_it_has(sweep_store, caplog, capsys):
    """Ranked first, a Dirichlet run would stop the ensemble; named, it is refused; a run named twice too."""
    import mlflow
    import mlflow.keras

    from galaxyzoo.model.network import build_model

    uri, client, sweep = sweep_store
    trial = client.get_run(sweep.best_run_id)
    with mlflow.start_run(experiment_id=trial.info.experiment_id,
                          tags={"mlflow.parentRunId": sweep.parent_run_id, "head": "dirichlet"}) as run:
        mlflow.keras.log_model(build_model(input_size=32, conv_filters=(4,), dense_units=(8,), dense_dropout=(0.0,),
                                           head="dirichlet"),
                               name="model", pip_requirements=[])
        mlflow.log_metric("val_rmse", 0.0)  # the best of the sweep by far
    with caplog.at_level("WARNING", logger="galaxyzoo.training.ensemble"):
        assert main(["ensemble", "--sweep-run", sweep.parent_run_id, "--top-k", "3", "--tracking-uri", uri]) == 0
    ensemble_run = capsys.readouterr().out.split("logged as run ")[1].split(":")[0]
    assert run.info.run_id not in client.get_run(ensemble_run).data.tags["ensemble.members"]
    assert "left out 1 run(s) with the 'dirichlet' head" in caplog.text
    assert "--top-k 3, but only 2 finished run(s)" in caplog.text and "an ensemble of 2" in caplog.text
    assert main(["ensemble", "--runs", sweep.best_run_id, sweep.best_run_id, "--tracking-uri", uri]) == 2
    assert f"--runs {sweep.best_run_id}: named twice" in capsys.readouterr().err
    # It has no network of its own to evaluate (its test metrics are in its run) or to start a training from.
    assert main(["evaluate", "--model", ensemble_run, "--tracking-uri", uri]) == 2
    assert f"run {ensemble_run} is an ensemble of 2 runs, with no network of its own; name one of its members" \
        in capsys.readouterr().err


def test_an_ensemble_run_a_killed_process_left_running_is_closed_by_the_next_ensemble(tmp_path):
    """SIGKILLed, `ensemble` leaves its run RUNNING; the next one on this machine closes it, not a live one's."""
    import json
    import signal
    import socket
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    from galaxyzoo.training import ensemble as ensemble_mod

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("galaxyzoo")
    hold = ("import sys; from filelock import FileLock\n"
            "lock = FileLock(sys.argv[1] + '.lock'); lock.acquire(); print('held', flush=True); sys.stdin.read()")
    builders, ids = {}, {}
    for name in ("killed", "alive"):
        folder = str(tmp_path / f"galaxyzoo.tmp-{name}")
        os.mkdir(folder)  # a scratch folder exists while it is held
        builders[name] = subprocess.Popen([sys.executable, "-c", hold, folder], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True)
        assert builders[name].stdout.readline().strip() == "held"
        held = json.dumps({"host": socket.gethostname(), "scratch": folder})
        ids[name] = client.create_run(experiment, tags={"galaxyzoo.ensemble": "2",
                                                        "galaxyzoo.held_by": held}).info.run_id
    elsewhere = json.dumps({"host": "another-machine", "scratch": str(tmp_path / "x")})
    ids["elsewhere"] = client.create_run(experiment, tags={"galaxyzoo.ensemble": "2",
                                                           "galaxyzoo.held_by": elsewhere}).info.run_id
    builders["killed"].send_signal(signal.SIGKILL)
    builders["killed"].wait()
    try:
        ensemble_mod._close_killed_ensembles(client, experiment)
    finally:
        builders["alive"].communicate("")
    killed = client.get_run(ids["killed"])
    assert killed.info.status == "FAILED" and "killed" in killed.data.tags["galaxyzoo.closed_why"]
    assert client.get_run(ids["alive"]).info.status == "RUNNING"
    assert client.get_run(ids["elsewhere"]).info.status == "RUNNING"
