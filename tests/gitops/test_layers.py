"""The import arrows of the GitOps and monitoring layers point down the pipeline (STYLE section 7):
commands -> api -> {gitops, monitoring} -> report -> playbook -> {manifest, clients} -> leaves.
gitops and monitoring never import each other; clients import only leaves; commands import only api
(and constants of the layer they present). Only quantgate's own imports are judged."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COMPILER = Path(__file__).resolve().parents[2] / "compiler"
LEAVES = {"compiler", "compiler.errors", "compiler.files", "compiler.vocabulary", "compiler.discover"}
BELOW_PLAYBOOK = ("compiler.manifest", "compiler.clients", "compiler.store")
ALLOWED = {
    "clients": LEAVES | {"compiler.clients"},  # a client may share a leaf helper of its own package
    "gitops": LEAVES | {"compiler.gitops", "compiler.report", "compiler.playbook", *BELOW_PLAYBOOK},
    "monitoring": LEAVES | {"compiler.monitoring", "compiler.report", "compiler.playbook", *BELOW_PLAYBOOK},
}
THIN_COMMANDS = ("signoff", "comment", "commit_back", "monitor", "changed", "init", "rules")


def imports(path: Path) -> list[tuple[str, bool]]:
    """(quantgate module imported, at module level?) for every import of ``compiler...`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "compiler":
            found.append((node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names if a.name.split(".")[0] == "compiler"]
    return found


def allowed(module: str, prefixes: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes if p != "compiler") or module == "compiler"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_downward_at_module_level(layer):
    for path in sorted((COMPILER / layer).glob("*.py")):
        for module, at_top in imports(path):
            assert allowed(module, ALLOWED[layer]), f"{path.name} imports {module}"
            assert at_top or layer == "monitoring" and path.name in ("rules.py", "serving.py"), \
                f"{path.name} imports {module} inside a function"


@pytest.mark.parametrize("name", THIN_COMMANDS)
def test_commands_call_the_api(name):
    path = COMPILER / "commands" / f"{name}.py"
    modules = {module for module, _ in imports(path)}
    assert "compiler" in modules  # from compiler import api
    assert modules <= {"compiler", "compiler.errors", "compiler.gitops.scaffold"}, modules
    calls = [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
             and n.func.value.id == "api"]
    assert len(calls) == 1, f"{name} makes {len(calls)} api calls"
