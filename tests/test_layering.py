"""The layering contract: imports inside ``compiler/`` point down the pipeline only, with no cycle.

Read from the real import graph (every ``import`` statement, function-level ones included: a lazy
import hid two cycles here before). The layers, top to bottom; a module may import its own layer's
package and anything below, never above, and sibling packages of one layer never import each other:

    cli > commands > api > {gitops, monitoring} > report > playbook > {manifest, store, clients}
        > {errors, files, vocabulary, discover, __init__}

``runners/`` may import only the compiler's leaves and ``store`` (it is called through ``runners.base`` and
``runners.registry``); ``compiler/`` may import only ``runners.base`` and ``runners.registry``, and
``compiler.api`` (the composition root) also ``runners.local``, the real runner it defaults to.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[set[str]] = [
    {"cli"},
    {"commands"},
    {"api"},
    {"gitops", "monitoring"},
    {"report"},
    {"playbook"},
    {"manifest", "store", "clients"},
    {"errors", "files", "rows", "vocabulary", "discover", "__init__"},
]
LEAVES = LAYERS[-1]
RUNNER_ENTRY = {"runners.base", "runners.registry", "runners.noise"}
#: Besides the leaves, runners may use the artifact store (the serving loader pulls through it).
RUNNER_MAY_USE = {"store"}
#: The composition root may also construct the real runner.
RUNNER_ENTRY_API = RUNNER_ENTRY | {"runners.local"}


def unit(module: str) -> str:
    """``compiler.playbook.plan`` -> ``playbook``; ``compiler.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def rank(name: str) -> int:
    return next((i for i, layer in enumerate(LAYERS) if name in layer), -1)  # unknown: top, so importing it fails


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """Every quantgate module ``path`` imports, with the line, from the source (not the runtime)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path, root)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = me.split(".")[: -node.level] if not path.name == "__init__.py" else me.split(".")[: len(me.split(".")) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            folder = root.joinpath(*base.split("."))
            for alias in node.names:  # from compiler.playbook import plan -> compiler.playbook.plan
                is_module = (folder / f"{alias.name}.py").is_file() or (folder / alias.name).is_dir()
                found.append((f"{base}.{alias.name}" if is_module else base, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] in ("compiler", "runners")]


def violations(root: Path) -> list[str]:
    """Every upward or sideways import, and every import cycle among compiler modules."""
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in sorted((root / "compiler").rglob("*.py")):
        me = module_name(path, root)
        mine = unit(me)
        for target, line in imports(path, root):
            where = f"{path.relative_to(root)}:{line}: {me} imports {target}"
            if target.startswith("runners"):
                allowed = RUNNER_ENTRY_API if me == "compiler.api" else RUNNER_ENTRY
                if not any(target == entry or target.startswith(entry + ".") for entry in allowed):
                    found.append(f"{where}: compiler reaches runners only through {', '.join(sorted(RUNNER_ENTRY))}")
                continue
            theirs = unit(target)
            graph.setdefault(me, set()).add(target)
            if theirs == mine:
                continue
            if rank(theirs) < rank(mine):
                found.append(f"{where}: {theirs} is above {mine}")
            elif rank(theirs) == rank(mine):
                found.append(f"{where}: {mine} and {theirs} are siblings and must not import each other")
    for path in sorted((root / "runners").rglob("*.py")):
        for target, line in imports(path, root):
            if target.startswith("compiler") and unit(target) not in LEAVES | RUNNER_MAY_USE:
                found.append(f"{path.relative_to(root)}:{line}: runners may import only compiler's leaves and store, not {target}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles between modules (a package's ``__init__`` importing its own modules does not count)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_compiler_imports_point_down_the_pipeline_only():
    assert violations(ROOT) == []


def test_every_compiler_module_belongs_to_a_layer():
    units = {unit(module_name(p, ROOT)) for p in (ROOT / "compiler").rglob("*.py")}
    assert units <= set().union(*LAYERS), units - set().union(*LAYERS)


def test_the_contract_fails_on_an_injected_upward_import(tmp_path):
    for name in ("compiler", "runners"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(tmp_path) == []
    target = tmp_path / "compiler" / "playbook" / "gate.py"
    target.write_text(target.read_text() + "\n\ndef _sneaky():\n    from compiler.gitops import signoff  # noqa: F401\n")
    found = violations(tmp_path)
    assert any("compiler/playbook/gate.py" in v and "gitops is above playbook" in v for v in found), found


def test_the_contract_fails_on_an_injected_cycle(tmp_path):
    for name in ("compiler", "runners"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "compiler" / "playbook" / "gate.py"
    target.write_text(target.read_text() + "\nfrom compiler.playbook import plan  # noqa: E402,F401\n")
    assert any(v.startswith("import cycle:") and "compiler.playbook.gate" in v for v in violations(tmp_path))
