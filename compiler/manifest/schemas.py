"""JSON Schemas (and the manifest reference) generated from the pydantic models, never hand-edited.

``SCHEMAS`` lists ``(file under schemas/, "module:Model")``; add a row to publish another schema (the
lock's, for instance). Output is deterministic (same models, same bytes), so CI can check that the
committed files are fresh.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from pathlib import Path

SCHEMA_DIR = "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: (file name under schemas/, "module:Model").
SCHEMAS: list[tuple[str, str]] = [
    ("manifest.schema.json", "compiler.manifest.model:Manifest"),
    ("lock.schema.json", "compiler.playbook.lockmodel:Lock"),
]
#: Other files generated from the models: (repo-relative path, "module:function() -> str").
DOCS: list[tuple[str, str]] = [
    ("docs/manifest.md", "compiler.manifest.reference:render_reference"),
]


def is_quantgate_repository(root: Path) -> bool:
    """Whether ``root`` is quantgate's own source repository (the one place ``quantgate schema``
    writes ``schemas/`` and ``docs/manifest.md`` without being asked to): it holds this compiler's
    source and the quantgate action."""
    root = Path(root)
    return (root / "compiler" / "manifest" / "schemas.py").is_file() and (root / "action.yml").is_file()


def render_schema(target: str) -> str:
    """The schema text of ``"module:Model"``: draft 2020-12, keys in model order, newline-terminated."""
    module_name, _, attr = target.partition(":")
    model = getattr(importlib.import_module(module_name), attr)
    schema = model.model_json_schema(by_alias=True, mode="validation")
    doc = {"$schema": DIALECT, **schema}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_schemas(root: Path, check: bool = False, output: Path | None = None) -> list[Path]:
    """Write every schema under ``root/schemas`` (and every file in ``DOCS``) whose content differs;
    return those paths. With ``check``, write nothing and return the stale ones. With ``output``, only
    the JSON Schemas, straight into that folder (another repository's copy for editors)."""
    changed = []
    files = generated(root) if output is None else [(Path(output) / name, render_schema(target)) for name, target in SCHEMAS]
    for path, text in files:
        try:
            current = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current == text:
            continue
        changed.append(path)
        if not check:
            _atomic_write(path, text)
    return changed


def generated(root: Path) -> list[tuple[Path, str]]:
    """Every generated file: (path under ``root``, expected content)."""
    out = [(root / SCHEMA_DIR / name, render_schema(target)) for name, target in SCHEMAS]
    for relative, target in DOCS:
        module_name, _, attr = target.partition(":")
        out.append((root / relative, getattr(importlib.import_module(module_name), attr)()))
    return out


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
