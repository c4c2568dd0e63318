"""Checks that need the repository, not just the manifest: files exist and stay inside it, the
model directory is there, remote code is allowlisted, names are unique across ``manifests/``.

Contract: ``repo_problems(loaded, config, names) -> list[Problem]``, errors and warnings, each
located at the key it is about. A missing *model directory* is a warning, not an error: demo and
in-house models live in git-ignored directories that ``scripts/setup`` (or the team's own step)
materialises, and the pull-request check that validates manifests must not need the weights.
``quantgate run`` fails on it later with the same hint.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from compiler.errors import Problem
from compiler.manifest.load import LoadedManifest, display
from compiler.manifest.locate import problem_at
from compiler.manifest.source import Source

#: What a user does when a repo-relative model directory is missing.
SETUP_HINT = "run scripts/setup (models/ is git-ignored and materialised by setup)"


def repo_problems(loaded: LoadedManifest, config: Any, names: dict[str, list[Path]] | None = None) -> list[Problem]:
    """Every repository-level problem of ``loaded``. ``config`` is the ``RepoConfig``; ``names`` maps
    metadata names to the manifest files that use them (see ``manifest_names``)."""
    manifest = loaded.manifest
    root = real_path(loaded.root)
    source = Source(loaded.display_path, loaded.text)
    problems: list[Problem] = []

    def add(at: tuple, message: str, severity: str = "error") -> None:
        problems.append(problem_at(source, loaded.tree, at, message, severity=severity))

    for at, dataset in (
        (("evaluation", "dataset", "path"), manifest.evaluation.dataset),
        (("quantization", "calibration", "dataset", "path"), manifest.quantization.calibration.dataset),
    ):
        why = file_problem(root, dataset.path)
        if why:
            add(at, why)

    model = manifest.model
    if model.is_local:
        target = root / model.source
        if not _inside(root, target):
            add(("model", "source"), f"{model.source!r} resolves outside the repository (a symlink?)")
        elif not target.exists():
            add(("model", "source"), f"model directory {model.source!r} does not exist yet: {SETUP_HINT}", severity="warning")
        elif not target.is_dir():
            add(("model", "source"), f"{model.source!r} is not a directory")
        elif model.gguf_file is not None and not (target / model.gguf_file).is_file():
            add(("model", "gguf_file"), f"{model.gguf_file!r} is not a file in {model.source!r}")
    if model.trust_remote_code and model.source not in config.trusted_remote_code:
        add(("model", "trust_remote_code"),
            f"refused: {model.source!r} is not in trusted_remote_code of quantgate.yaml at the repository root "
            "(a pull request must not be able to run arbitrary code in CI)")

    if names is not None:
        same = names.get(manifest.metadata.name, [])
        others = [p for p in same if real_path(p) != real_path(loaded.path)] if len(same) > 1 else []
        if others:
            shown = ", ".join(display(p, root) for p in others)
            add(("metadata", "name"), f"{manifest.metadata.name!r} is also the name of {shown}; names must be unique across manifests/")
    return problems


def file_problem(root: Path, relative: str) -> str | None:
    """Why ``root/relative`` is not a data file inside the repository (None: fine)."""
    target = root / relative
    if not _inside(root, target):
        return f"{relative!r} resolves outside the repository (a symlink?)"
    if not target.exists():
        return f"{relative!r} does not exist"
    if not target.is_file():
        return f"{relative!r} is not a file"
    return None


def _inside(root: Path, target: Path) -> bool:
    try:
        real_path(target).relative_to(root)
        return True
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


@lru_cache(maxsize=4096)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


def forget_paths() -> None:
    """Start a run: forget resolved folders (the tree may have changed since the last run)."""
    _real_dir.cache_clear()


def real_path(path: Path) -> Path:
    """``path.resolve()``, with folders resolved once per run (200 manifests share data/ and models/)."""
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        return path.resolve()
    return Path(_real_dir(str(path.parent))) / path.name


def manifest_names(paths: Iterable[Path], known: dict[Path, str] | None = None) -> dict[str, list[Path]]:
    """metadata name -> manifest files, for uniqueness. ``known`` gives names already loaded; other
    files are read with a fast safe parse and skipped when broken (their own validation says why)."""
    names: dict[str, list[Path]] = {}
    known = {real_path(p): n for p, n in (known or {}).items()}
    for path in paths:
        name = known.get(real_path(path))
        if name is None:
            name = _quick_name(path)
        if isinstance(name, str):
            names.setdefault(name, []).append(path)
    return names


def _quick_name(path: Path) -> str | None:
    from compiler.manifest.fastyaml import Unsure, fast_load

    try:
        if path.stat().st_size > 1024 * 1024:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        data = fast_load(text)
    except Unsure:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            data = YAML(typ="safe", pure=True).load(text)
        except (YAMLError, ValueError, TypeError, RecursionError):
            return None
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
        name = data["metadata"].get("name")
        return name if isinstance(name, str) else None
    return None
