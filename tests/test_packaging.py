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


def test_cli_help_does_not_import_tensorflow():
    code = (
        "import sys; from galaxyzoo.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'optuna') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
