"""The package's import graph: imports run downward only. Every ``import`` and ``from ...
import`` of the source counts, function-local ones included, so a cycle cannot hide
inside a function."""

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "graphrec_pipeline"
ROOT = "graphrec_pipeline"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports (the longest known prefix of each name)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target.startswith(ROOT) and target != name and target != ROOT:
                    edges[name].add(target)
    return edges


def _unit(module: str) -> str:
    """The layer unit: a top-level module or subpackage of graphrec_pipeline."""
    return ".".join(module.split(".")[:2])


MODULES = _modules()
EDGES = _imports(MODULES)
UNITS: dict[str, set[str]] = defaultdict(set)
for _a, _targets in EDGES.items():
    UNITS[_unit(_a)].update(_unit(b) for b in _targets if _unit(b) != _unit(_a))


def test_no_relative_imports_escape_the_check():
    relative = [f"{name}:{node.lineno}" for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level]
    assert relative == []


@pytest.mark.parametrize("graph", ["modules", "packages"])
def test_the_import_graph_has_no_cycle(graph):
    edges = EDGES if graph == "modules" else UNITS
    try:
        list(graphlib.TopologicalSorter({k: sorted(v) for k, v in edges.items()}).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle among {graph}: {' -> '.join(err.args[1])}")


@pytest.mark.parametrize("low, high", [
    ("serving", "train"),  # the server loads the saved model, never the trainer
    ("serving", "evaluation"),
    ("model", "train"),
    ("graph", "model"),
    ("world", "graph"),
    ("storage", "releases"),
    ("lineage", "serving"),
])
def test_a_lower_layer_never_imports_a_higher_one(low, high):
    reach, todo = set(), [f"{ROOT}.{low}"]
    while todo:  # everything the lower layer imports, directly or not
        for b in UNITS.get(todo.pop(), ()):
            if b not in reach:
                reach.add(b)
                todo.append(b)
    assert f"{ROOT}.{high}" not in reach


def test_only_the_dagster_layer_imports_dagster():
    dagster_users = sorted(name for name, path in MODULES.items() if any(
        (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "dagster" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "dagster")
        for n in ast.walk(ast.parse(path.read_text()))))
    assert all(name.startswith((f"{ROOT}.defs", f"{ROOT}.definitions")) for name in dagster_users), dagster_users


def test_the_artifact_catalogue_is_on_the_ground_floor():
    """Training, serving, lineage and the assets all read and write a release's files
    through ``artifacts``; it must need none of them."""
    assert UNITS[f"{ROOT}.artifacts"] == {f"{ROOT}.storage"}
    users = {_unit(a) for a, targets in EDGES.items() if any(_unit(b) == f"{ROOT}.artifacts" for b in targets)}
    assert {f"{ROOT}.{u}" for u in ("graph", "model", "train", "serving", "lineage", "evaluation", "defs")} <= users
