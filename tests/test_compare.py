"""`galaxyzoo compare`: one table of runs, only the params that differ, best first."""

import io
from types import SimpleNamespace

import pandas as pd
import pytest

from galaxyzoo.tracking import compare
from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError


def _run(name, metrics, params, tags=None, start=0, end=60_000):
    return SimpleNamespace(
        info=SimpleNamespace(run_id=f"id-{name}", run_name=name, status="FINISHED", start_time=start, end_time=end),
        data=SimpleNamespace(metrics=metrics, params=params, tags=tags or {}),
    )


RUNS = [
    _run("a", {"val_rmse": 0.30, "val_r2_flat": 0.50, "test_rmse_t01": 0.1},
         {"model.head": "sigmoid", "train.epochs": "5", "tracking.run_name": "a",
          "callback.checkpoint": "EpochCheckpoint(dir=/runs/id-a)"}, end=125_000),
    _run("b", {"val_rmse": 0.20, "val_r2_flat": 0.70}, {"model.head": "softmax", "train.epochs": "5"}),
    _run("c", {"val_r2_flat": 0.10}, {"model.head": "sigmoid", "train.epochs": "5"}, tags={"trial_number": "2"}),
]


def test_table_keeps_differing_params_and_headline_metrics():
    table = compare.runs_table(RUNS, sort="val_rmse")
    assert list(table["run"]) == ["b", "a", "c"]  # lower is better; a run without the metric goes last
    assert "model.head" in table and "train.epochs" not in table  # the same everywhere: not a column
    assert "tracking.run_name" not in table and "callback.checkpoint" not in table  # differ by construction
    assert "test_rmse_t01" not in table  # per-question values stay in the MLflow UI
    # a test-time augmented headline figure gets its column too; per-question ones still do not
    assert compare.HEADLINE.fullmatch("test_rmse_tta") and not compare.HEADLINE.fullmatch("test_rmse_t01_tta")
    assert list(table.columns[:6]) == ["run", "run_id", "trial", "state", "duration", "val_rmse"]
    assert table.loc[table["run"] == "a", "duration"].item() == 125.0


def test_r2_sorts_descending():
    assert list(compare.runs_table(RUNS, sort="val_r2_flat")["run"]) == ["b", "a", "c"]


def test_formats():
    table = compare.runs_table(RUNS, sort="val_rmse")
    text = compare.render(table, "text")
    header, first = text.splitlines()[:2]
    assert first.split()[0] == "b" and "run_id" not in header
    assert "2:05" in text  # durations as minutes:seconds
    csv = pd.read_csv(io.StringIO(compare.render(table, "csv")))
    assert csv["val_rmse"].iloc[0] == 0.2 and "run_id" in csv
    markdown = compare.render(table, "markdown").splitlines()
    assert markdown[0].startswith("| run | trial | state | duration | val_rmse")
    assert markdown[1].startswith("|---|") and len(markdown) == 2 + len(RUNS)


def test_markdown_escapes_pipes():
    runs = [_run("a", {"val_rmse": 0.1}, {"x": "a|b"}), _run("b", {"val_rmse": 0.2}, {"x": "c"})]
    assert "a\\|b" in compare.render(compare.runs_table(runs), "markdown")


def test_bad_requests():
    with pytest.raises(GalaxyZooError, match="no run has the metric 'nope'"):
        compare.runs_table(RUNS, sort="nope")
    with pytest.raises(GalaxyZooError, match="no runs to compare"):
        compare.runs_table([])
    with pytest.raises(GalaxyZooError, match="unknown format"):
        compare.render(compare.runs_table(RUNS), "xlsx")


def test_compare_on_a_missing_store_says_so_and_creates_none(tmp_path, capsys):
    from galaxyzoo.cli import main

    missing = tmp_path / "typo.db"
    assert main(["compare", "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert f"no such database {missing}; name the store the runs are in" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither an empty store nor its lock file


def test_cli_on_a_sweep_and_an_experiment(finished_sweep, capsys):
    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    assert main(["compare", "--sweep-run", result.parent_run_id, "--format", "csv", "--tracking-uri", uri]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(table) == 2 and sorted(table["trial"]) == [0, 1]
    assert table["val_rmse"].is_monotonic_increasing
    assert "train.learning_rate" in table  # searched, so it differs between the trials
    assert table["run_id"].iloc[0] == result.best_run_id

    assert main(["compare", "--experiment-name", "galaxyzoo", "--tracking-uri", uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header + the two trials; the sweep's parent run trains nothing

    assert main(["compare", "--experiment-name", "nope", "--tracking-uri", uri]) == 2
    assert "no MLflow experiment 'nope'" in capsys.readouterr().err
    assert main(["compare", "--sweep-run", "0123abcd", "--tracking-uri", uri]) == 2
    assert "no MLflow run '0123abcd'" in capsys.readouterr().err
    # a trial's id where its sweep's parent was meant: said so, not "no runs to compare"
    assert main(["compare", "--sweep-run", result.best_run_id, "--tracking-uri", uri]) == 2
    assert (f"--sweep-run {result.best_run_id}: not a sweep's parent run; its sweep's parent run is "
            f"{result.parent_run_id}") in capsys.readouterr().err


def test_an_experiment_lists_trainings_and_ensembles_only(tmp_path, capsys):
    """`mlflow run -e predict` (or evaluate, embed, promote) opens a run in the experiment too, some with
    test metrics: they trained nothing, so they are not rows beside the trainings."""
    import mlflow

    from galaxyzoo.tracking import names
    from stores import seeded_uri

    uri = seeded_uri(tmp_path)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("galaxyzoo")
    runs = {"training": {names.TAG_CONFIG_HASH: "abc"},
            "trial": {names.TAG_CONFIG_HASH: "abc", names.TAG_TRIAL_NUMBER: "0", names.TAG_TRIAL_STATE: "complete"},
            "ensemble": {names.TAG_ENSEMBLE: "2"},
            "sweep parent": {names.TAG_CONFIG_HASH: "abc", names.TAG_SWEEP: "quickstart"},
            "evaluate entry point": {}}
    for name, tags in runs.items():
        run = client.create_run(experiment, run_name=name, tags=tags)
        client.log_metric(run.info.run_id, "test_rmse", 0.25)
        client.set_terminated(run.info.run_id)
    assert main(["compare", "--experiment-name", "galaxyzoo", "--sort", "test_rmse", "--format", "csv",
                 "--tracking-uri", uri]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert sorted(table["run"]) == ["ensemble", "training", "trial"]
    assert table.set_index("run").loc["trial", "state"] == "completed"  # the trial tag's "complete", as trainings


def test_an_infinite_metric_read_back_from_sqlite_is_infinite_and_never_ranked(tmp_path):
    """MLflow's SQL store saves ±inf as ±float max; a diverged run must not look finite or rank first."""
    from mlflow.tracking import MlflowClient

    from galaxyzoo.registry import promote
    from galaxyzoo.tracking import names

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("inf")
    ids = {}
    for name, value in (("diverged", float("-inf")), ("fine", 0.2), ("exploded", float("inf"))):
        ids[name] = client.create_run(experiment, run_name=name, tags={names.TAG_ENSEMBLE: "1"}).info.run_id
        client.log_metric(ids[name], "val_rmse", value)
        client.set_terminated(ids[name], "FINISHED")
    runs = [client.get_run(i) for i in ids.values()]
    assert abs(runs[0].data.metrics["val_rmse"]) > 1e308  # what the store gives back
    assert [compare.metric_value(r, "val_rmse") for r in runs] == [float("-inf"), 0.2, float("inf")]
    for mode in ("min", "max"):
        ranked = promote.ranked_runs(client, runs, metric="val_rmse", mode=mode, where="here", ensembles=True)
        assert [r.info.run_id for r in ranked] == [ids["fine"]]
    assert "inf" in compare.render(compare.runs_table(runs)).split("\n")[-2]
