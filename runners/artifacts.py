"""Content-addressed artifacts: ``<artifact_root>/<slug>/<sha256>/``.

An artifact directory holds the backend's weight files, the tokenizer (so it can be served on its
own), the model's ``config.json`` for torch formats, and ``artifact.json``: the backend and its exact
config, library versions, the source model's canonical weight hash, which layers stayed at full
precision, the calibration record and the sha256 of every other file. Nothing machine-specific
(paths, timestamps, host names) goes in, so identical inputs give identical bytes.

The directory's name is the artifact hash, ``compiler.files.artifact_sha256``: sha256 over the sorted
``name\\0sha256\\n`` lines of all its files (``compiler.files.listing``), ``artifact.json`` included.
It is written under a temporary name and renamed into place, so a reader never sees a half-written
artifact; an existing directory with the same hash is the same artifact and is kept.

``load_artifact(path, format, device)`` checks every file against ``artifact.json`` and rebuilds the
model through its backend's ``reload``; ``runners.reload`` runs it in a fresh process.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.files import artifact_sha256, file_sha256, listing
from runners.base import Artifact, RunnerError

RECORD_FILE = "artifact.json"
SCHEMA = 1


def versions(*distributions: str) -> dict[str, str]:
    import importlib.metadata

    out = {}
    for name in sorted(set(distributions)):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = ""
    return out


#: tokenizer_config.json keys that record how the tokenizer was last called or loaded (offline flags,
#: the last max_length), not what it is: dropped so the artifact hash depends on the tokenizer alone.
_TOKENIZER_CALL_STATE = ("local_files_only", "is_local", "max_length", "stride", "pad_to_multiple_of", "truncation_strategy")


def save_tokenizer(tokenizer: Any, directory: Path) -> None:
    """Save ``tokenizer`` without the per-call state a fast tokenizer accumulates (truncation and
    padding set by the last call end up in tokenizer.json and tokenizer_config.json otherwise)."""
    import copy

    clean = copy.deepcopy(tokenizer)
    backend = getattr(clean, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    clean.save_pretrained(directory)
    config = directory / "tokenizer_config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        for key in _TOKENIZER_CALL_STATE:
            data.pop(key, None)
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_artifact(artifact_root: str | Path, name: str, fmt: str, record: dict[str, Any],
                   write: Callable[[Path], dict[str, Any]]) -> Artifact:
    """Write files with ``write(tmpdir) -> backend config``, add ``artifact.json``, hash, rename.

    ``record`` is the rest of ``artifact.json`` (backend, versions, source, layers, calibration).
    ``Artifact.path`` is relative to the parent of ``artifact_root`` (the repository root when the
    root is ``<repo>/artifacts``).
    """
    root = Path(artifact_root).resolve()
    parent = root / name
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        config = write(tmp)
        files = listing(tmp)
        body = {"schema": SCHEMA, "format": fmt, **record, "config": config, "files": files}
        (tmp / RECORD_FILE).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        files = listing(tmp)
        sha = artifact_sha256(files)
        final = parent / sha
        if final.is_dir():
            shutil.rmtree(tmp)  # the same content is already there
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final.chmod(0o755)
    sizes = {name: (final / name).stat().st_size for name in files}
    return Artifact(path=os.path.relpath(final, root.parent), sha256=sha, files=files, format=fmt, sizes=sizes)


def read_record(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunnerError(f"{directory}: not a quantgate artifact ({RECORD_FILE}: {exc})") from exc


def verify(directory: Path) -> dict[str, Any]:
    """``artifact.json`` of ``directory`` after checking every listed file's sha256 (RunnerError if not)."""
    record = read_record(directory)
    for rel, expected in sorted(record.get("files", {}).items()):
        path = directory / rel
        if not path.is_file() or file_sha256(path) != expected:
            raise RunnerError(f"{directory}/{rel} does not match the sha256 in {RECORD_FILE}; the artifact is damaged")
    return record


def weights_bytes(directory: Path, record: dict[str, Any]) -> int:
    """The footprint: bytes of the backend's weight files (not the tokenizer or the records)."""
    return sum((directory / f).stat().st_size for f in record["config"]["weights_files"])


@dataclass
class LoadedArtifact:
    model: Any  # torch module, or None for onnx
    tokenizer: Any
    forward: Any  # runners.models.Forward
    record: dict[str, Any]
    footprint_bytes: int


def load_artifact(path: str | Path, format: str | None = None, device: str = "cpu") -> LoadedArtifact:
    """Verify and load an artifact directory in this process (its backend is read from ``artifact.json``)."""
    from transformers import AutoTokenizer

    from runners import backends
    from runners.models import _model_class

    directory = Path(path)
    record = verify(directory)
    if format is not None and record["format"] != format:
        raise RunnerError(f"{directory}: artifact format is {record['format']}, expected {format}")
    if device != "cpu":
        raise RunnerError(f"{directory}: reloading artifacts on {device} is not supported yet (cpu only)")
    module = backends.load(record["backend"])
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model, forward = module.reload(directory, record["config"], _model_class(record["task"]), record["task"])
    return LoadedArtifact(model=model, tokenizer=tokenizer, forward=forward, record=record,
                          footprint_bytes=weights_bytes(directory, record))
