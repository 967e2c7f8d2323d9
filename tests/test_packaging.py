"""The project's own files must install and run what it needs."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_matches_pip_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = project["dependencies"] + project["optional-dependencies"]["tf"]
    env = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == expected
    assert "python=3.11" in env["dependencies"]


# What each entry point accepts beyond its declared parameters: `-P NAME=VALUE`, appended by
# MLflow as `--NAME VALUE` (see the MLproject's comment).
OPTIONAL = {
    "main": {"epochs": "3", "data": "synthetic", "set": "seed=1", "init_from": "models:/m@a", "freeze_blocks": "1",
             "init-from": "models:/m@a", "freeze-blocks": "1"},
    "evaluate": {"data": "synthetic", "set": "seed=1", "out": "eval", "experiment": "experiments/quickstart.yaml"},
    "sweep": {"n-trials": "3", "epochs": "2", "data": "synthetic", "storage": "sqlite:///o.db",
              "study-name": "s", "pruner": "none", "set": "seed=1", "heartbeat": "30", "db-retry": "60",
              # the spellings the README and older docs use: `-P n_trials=3 -P study_name=s`
              "n_trials": "3", "study_name": "s"},
    "promote": {"experiment_name": "galaxyzoo", "sweep_run": "0" * 32, "experiment-name": "galaxyzoo",
                "run": "0" * 32},
    "ensemble": {"experiment_name": "galaxyzoo", "sweep_run": "0" * 32, "runs": f"{'0' * 32} {'1' * 32}",
                 "batch-size": "64"},
}


def test_mlproject_entry_points_use_the_cli():
    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    assert mlproject["conda_env"] == "conda.yaml"
    from galaxyzoo.cli import COMMANDS

    for name, entry in mlproject["entry_points"].items():
        command = entry["command"].split()
        assert command[:3] == ["python", "-m", "galaxyzoo"], name
        assert command[3] in COMMANDS, f"entry point {name} runs unknown command {command[3]}"
        for param in entry.get("parameters", {}):
            assert "{" + param + "}" in entry["command"], f"{name}: parameter {param} is never used"


def test_mlproject_declares_only_parameters_with_a_value_and_no_config_key():
    """MLflow logs every declared parameter as a param of its run: an empty default would be an
    empty param, and a config key's name would shadow the param of the training in that run."""
    from galaxyzoo.config.experiment import ALIASES, flatten, from_dict

    config_names = set(ALIASES) | set(flatten(from_dict({})))
    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    for name, entry in mlproject["entry_points"].items():
        for param, spec in entry.get("parameters", {}).items():
            assert spec.get("default", None) != "", f"{name}: {param} has an empty default"
            if name in ("main", "sweep"):  # the entry points whose run is (or holds) a training
                assert param not in config_names, f"{name}: {param} shadows a config key"


def test_mlproject_commands_and_optional_parameters_parse():
    """Each command, with its declared defaults and every optional `-P` appended as MLflow
    appends it, is a valid `galaxyzoo` command line."""
    from galaxyzoo.cli import build_parser

    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    for name, entry in mlproject["entry_points"].items():
        values = {p: spec.get("default", "x") for p, spec in entry.get("parameters", {}).items()}
        argv = entry["command"].format(**values).split()[3:]
        for option, value in OPTIONAL.get(name, {}).items():
            argv += [f"--{option}", value]
        build_parser().parse_args(argv)  # argparse exits (SystemExit) on an unknown option


def test_the_packaged_model_lists_every_distribution_its_code_imports():
    """An environment built from the packaged model's requirements (`mlflow models serve` without
    `--env-manager local`, `build-docker`) must hold every library the loaded package code imports at
    module level: simplejpeg, once, was missing and the model would not load there."""
    script = """
import ast, importlib.metadata as md, pathlib, sys
import galaxyzoo.registry.packaged
owners = md.packages_distributions()
for name, module in list(sys.modules.items()):
    if name.startswith("galaxyzoo") and getattr(module, "__file__", None):
        for node in ast.parse(pathlib.Path(module.__file__).read_text()).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for imported in [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]:
                    print(*owners.get(imported.split(".")[0], []))
"""
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    imported = set(printed.split()) - {"galaxyzoo", "mlflow-skinny", "mlflow-tracing"}  # the last two: mlflow's
    from galaxyzoo.registry.packaged import _requirements

    listed = {r.split("==")[0].lower().replace("_", "-") for r in _requirements()}
    assert {d.lower().replace("_", "-") for d in imported} - listed == set()


def test_cli_help_does_not_import_tensorflow():
    code = (
        "import sys; from galaxyzoo.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'optuna') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_train_refuses_a_bad_override_before_loading_keras_or_mlflow():
    code = (
        "import sys; from galaxyzoo.cli import main; "
        "print(main(['train', '--experiment', 'experiments/improved.yaml', '--set', 'train.augment.noise=abc'])); "
        "print(','.join(m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split("\n")[:2] == ["2", ""]  # exit code 2, and nothing heavy loaded
    assert "train.augment.noise: expected a number, got 'abc'" in out.stderr
