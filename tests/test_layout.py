"""The package's layout: layers import only downwards, and no module imports itself back.

Every `galaxyzoo` import counts, in-function ones included (those keep TensorFlow
and MLflow out of the CLI's start-up, but they must not hide a cycle). The
layers are docs/architecture.md's table.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "galaxyzoo"

# Lowest first. A module may import its own layer and the ones before it.
LAYERS = (
    ("galaxyzoo", "galaxyzoo.errors", "galaxyzoo.schema"),
    ("galaxyzoo.system",),
    ("galaxyzoo.config",),
    ("galaxyzoo.data",),
    ("galaxyzoo.model",),
    ("galaxyzoo.tracking",),
    ("galaxyzoo.registry",),
    ("galaxyzoo.training",),
    ("galaxyzoo.sweep",),
    ("galaxyzoo.commands", "galaxyzoo.cli", "galaxyzoo.__main__"),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _package_of(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts if parts[-1] == "__init__" else parts[:-1]


def _imports(path: Path) -> set[str]:
    """The galaxyzoo modules `path` imports, anywhere in the file (relative imports resolved)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "galaxyzoo"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `from ..data import crop` inside galaxyzoo/training/
                package = _package_of(path)
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "galaxyzoo":
                continue
            for alias in node.names:  # `from galaxyzoo.data import crop` imports the module galaxyzoo.data.crop
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    return out


def _dynamic_imports(path: Path) -> list[int]:
    """Lines of `path` that import by name at run time (`importlib.import_module`, `__import__`)."""
    tree = ast.parse(path.read_text(), str(path))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module")))]


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or (p != "galaxyzoo" and module.startswith(p + ".")) for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py (add it, and to docs/architecture.md)")


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_every_module_has_a_layer():
    assert len(MODULES) > 40  # the scan found the package
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    upward = sorted(dep for dep in GRAPH[module] if _layer(dep) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports a higher layer: {upward}"


def test_only_the_cli_imports_by_name():
    # An import the graph cannot see could hide a cycle; the CLI's table of subcommands is the one exception.
    found = {name: lines for name, path in MODULES.items() if (lines := _dynamic_imports(path))}
    assert set(found) <= {"galaxyzoo.cli"}, found


def test_no_import_cycles():
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH))


def test_the_checks_catch_what_they_look_for():
    # The cycle finder and the layer map on hand-made cases, so a broken check cannot pass silently.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None
    assert _layer("galaxyzoo.data.synth.render") < _layer("galaxyzoo.model.network") < _layer("galaxyzoo.cli")
    assert "galaxyzoo.data.crop" in GRAPH["galaxyzoo.data.prepare"]


def test_relative_imports_resolve(tmp_path, monkeypatch):
    module = PACKAGE / "training" / "run.py"
    probe = tmp_path / "run.py"
    probe.write_text("from ..data import crop\nfrom . import fit\nfrom .. import schema\n")
    package = _package_of(module)  # the probe sits where run.py does
    monkeypatch.setattr("test_layout._package_of", lambda path: package)
    assert _imports(probe) == {"galaxyzoo.data.crop", "galaxyzoo.training.fit", "galaxyzoo.schema"}
