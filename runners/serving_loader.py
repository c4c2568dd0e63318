"""The reference reader of the serving flag (``manifests/<name>.serving.yaml``): load whichever
artifact is active. A real serving stack does the same three steps on start-up and whenever the file
changes in its deployed checkout (or config map):

1. read the file and take ``artifacts[active]``;
2. for ``quantized``, check the artifact's files against their recorded sha256 (refuse on mismatch:
   a half-synced artifact must never serve); for ``full-precision``, load ``source`` at ``revision``;
3. swap the model in. Both artifacts stay deployed, so a rollback is this re-read, not a redeploy.

``resolve`` does steps 1-2 without torch (pure, for tests and health checks); ``load_active`` adds 3
with the model stack, imported lazily. Usage: ``python -m runners.serving_loader manifests/x.serving.yaml``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.files import file_sha256
from runners.base import RunnerError, RunnerInputError


@dataclass(frozen=True)
class ActiveArtifact:
    name: str
    active: str  # quantized | full-precision
    location: str  # absolute directory of the quantized artifact, or the model source
    artifact: dict  # the serving file's entry for it
    reason: dict | None  # the rollback record when full precision serves because of one


def resolve(serving_file: Path, root: Path | None = None, verify: bool = True, store: Any = None) -> ActiveArtifact:
    """Which artifact serves, where it is, and (``verify``) that a quantized artifact's files match
    their recorded hashes. ``root``: the repository root paths are relative to (default: the parent
    of the serving file's ``manifests/`` folder). ``store`` (a ``compiler.store.Store`` or a store
    URL): where to fetch a quantized artifact not deployed here yet, through the same verified pull
    as ``quantgate pull`` (hashed while streaming, renamed into place only when every file matches)."""
    from ruamel.yaml import YAML

    serving_file = Path(serving_file)
    root = Path(root) if root else serving_file.resolve().parent.parent
    try:
        data = YAML(typ="safe", pure=True).load(serving_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunnerInputError(f"cannot read the serving file: {exc}", str(serving_file)) from exc
    active = data.get("active") if isinstance(data, dict) else None
    artifacts = data.get("artifacts") if isinstance(data, dict) else None
    if active not in ("quantized", "full-precision") or not isinstance(artifacts, dict) or not artifacts.get(active):
        raise RunnerInputError("needs active: quantized|full-precision and artifacts[active]", str(serving_file))
    entry = artifacts[active]
    if active == "full-precision":
        source = entry["source"]
        location = str((root / source).resolve()) if source.startswith("./") else source
        return ActiveArtifact(data.get("name", ""), active, location, entry, data.get("rollback"))
    folder = (root / entry["path"]).resolve()
    if store is not None and not folder.is_dir():
        from compiler.store import StoreError, open_store, pull

        try:
            chosen_store = open_store(store, root) if isinstance(store, str) else store
            pull(chosen_store, Path(entry["path"]).parent.name, entry["sha256"], dict(entry.get("files") or {}), folder)
        except StoreError as exc:
            raise RunnerError(f"{serving_file}: could not fetch {entry['path']} from the store: {exc}") from exc
    if verify:
        if not folder.is_dir():
            raise RunnerError(f"{serving_file}: the active quantized artifact {entry['path']} is not deployed here")
        for rel, expected in sorted((entry.get("files") or {}).items()):
            path = folder / rel
            if not path.is_file() or file_sha256(path) != expected:
                raise RunnerError(f"{serving_file}: {entry['path']}/{rel} does not match its recorded sha256; refusing to serve it")
    return ActiveArtifact(data.get("name", ""), active, str(folder), entry, None)


def load_active(serving_file: Path, task: str | None = None, root: Path | None = None, device: str = "cpu") -> Any:
    """Resolve, verify and load the active artifact; either way the result has ``.tokenizer`` and
    ``.forward``. Full precision goes through ``runners.models.load_model``; a quantized artifact
    through ``runners.artifacts.load_artifact``, which reloads it with the backend its
    ``artifact.json`` records (whatever the format: no backend is special-cased here)."""
    chosen = resolve(serving_file, root)
    entry = chosen.artifact
    if chosen.active == "full-precision":
        from runners.base import ModelSpec
        from runners.models import load_model

        return load_model(ModelSpec(source=chosen.location, revision=entry.get("revision"), task=task or entry["task"],
                                    gguf_file=entry.get("gguf_file")), device)
    from runners.artifacts import load_artifact

    return load_artifact(chosen.location, entry.get("format"), device)


def main(argv: list[str] | None = None) -> int:
    """Print which artifact serves and verify it (exit 0), or why it cannot serve (exit 3)."""
    argv = sys.argv[1:] if argv is None else argv
    store = None
    if len(argv) == 3 and argv[1] == "--store":
        argv, store = argv[:1], argv[2]
    if len(argv) != 1:
        print("usage: python -m runners.serving_loader manifests/<name>.serving.yaml [--store URL]", file=sys.stderr)
        return 2
    try:
        chosen = resolve(Path(argv[0]), store=store)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    why = f" (rolled back: {chosen.reason.get('rule')})" if chosen.reason else ""
    print(f"{chosen.name}: serving {chosen.active} from {chosen.location}{why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
