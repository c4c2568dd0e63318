"""Where things live in a quantgate repository: manifests and the files the tool writes beside them."""

from __future__ import annotations

from pathlib import Path

#: Suffixes of files quantgate writes next to a manifest; never manifests themselves.
TOOL_SUFFIXES = (".lock.yaml", ".rules.yaml", ".serving.yaml")
MANIFEST_DIR = "manifests"
REPO_CONFIG = "quantgate.yaml"


def find_repo_root(start: Path) -> Path:
    """The nearest ancestor holding a ``manifests/`` folder, ``quantgate.yaml`` or ``.git``; else ``start``."""
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    for candidate in (here, *here.parents):
        if (candidate / REPO_CONFIG).is_file() or (candidate / ".git").exists() or (candidate / MANIFEST_DIR).is_dir():
            return candidate
    return here


def is_tool_file(path: Path) -> bool:
    return path.name.endswith(TOOL_SUFFIXES)


def manifest_paths(root: Path) -> list[Path]:
    """Every manifest under ``root/manifests`` (``*.yaml``/``*.yml``), sorted, tool-written files excluded."""
    folder = root / MANIFEST_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file() and not is_tool_file(p)]
    return sorted(found)


def _sibling(manifest: Path, suffix: str) -> Path:
    stem = manifest.name.rsplit(".", 1)[0]
    return manifest.with_name(stem + suffix)


def lock_path(manifest: Path) -> Path:
    return _sibling(manifest, ".lock.yaml")


def rules_path(manifest: Path) -> Path:
    return _sibling(manifest, ".rules.yaml")


def serving_path(manifest: Path) -> Path:
    return _sibling(manifest, ".serving.yaml")


def report_dir(root: Path, name: str) -> Path:
    """Where the human report of a manifest goes (committed: it is the play-7 record)."""
    return root / "reports" / name


def artifact_root(root: Path) -> Path:
    """Content-addressed artifacts: ``artifacts/<model slug>/<sha256>/`` (git-ignored by default)."""
    return root / "artifacts"
