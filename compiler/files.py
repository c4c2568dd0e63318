"""Bytes on disk: the one definition of each hash, the canonical JSON and YAML quantgate writes, and
the atomic write every writer uses. A leaf: imports nothing from quantgate, so every layer (and
``runners/``) can use it.

- ``file_sha256``: sha256 of a file's bytes, streamed.
- ``directory_sha256``: a model directory's content hash (canonical JSON of {relative path: sha256}),
  the ``files_sha256`` a lock records for a local model.
- ``artifact_slug``: the folder name artifacts of a model source live under (``<slug>/<sha256>``).
- ``artifact_sha256``: an artifact's address, sha256 over sorted ``name\\0sha256\\n`` lines
  (``runners.artifacts``, the store and ``verify`` all combine per-file hashes this way).
- ``canonical_json``: sorted keys, no spaces, UTF-8, no NaN: the input of every hash.
- ``dump_yaml``: the canonical YAML of every file quantgate writes (locks, rules, serving flags).
- ``write_if_changed``: temp file + fsync + ``os.replace``, only when the bytes differ.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

BLOCK = 1 << 20


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    """The one canonical JSON used for every hash: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_of(value: Any) -> str:
    """sha256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def listing(folder: Path) -> dict[str, str]:
    """{relative posix path: sha256} of every file under ``folder`` (hidden files and caches left out)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def directory_sha256(folder: Path) -> str:
    """Content hash of a directory: sha256 over canonical JSON of {relative path: file sha256}."""
    return sha256_of(listing(folder))


def artifact_slug(source: str) -> str:
    """The folder artifacts of a model source live under: its last path component, lowercased."""
    tail = source.rstrip("/").split("/")[-1] or "model"
    return re.sub(r"[^a-z0-9._-]+", "-", tail.lower()).strip("-.") or "model"


def artifact_sha256(files: dict[str, str]) -> str:
    """An artifact's address from its per-file hashes: sha256 over sorted ``name\\0sha256\\n`` lines."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # never fold long strings: a fold would be a diff without a change
    yaml.representer.sort_base_mapping_type_on_output = False
    yaml.representer.ignore_aliases = lambda _data: True  # shared values are written out, never &anchors
    return yaml


def dump_yaml(data: Any, header: str = "") -> str:
    """The canonical YAML text quantgate writes: block style, key order as given, no anchors."""
    buffer = io.StringIO()
    # Through JSON first: plain types only (a str enum member or a tuple becomes what it reads as).
    _yaml().dump(json.loads(json.dumps(data, allow_nan=False)), buffer)
    return header + buffer.getvalue()


def load_yaml(text: str) -> Any:
    """Plain data from YAML text quantgate wrote (safe loader); ruamel's ``YAMLError`` on bad text."""
    return _yaml().load(text)


def write_if_changed(path: Path, content: bytes | str) -> bool:
    """Write ``content`` atomically (temp file in the same folder + ``os.replace``) unless the file
    already holds exactly these bytes. Returns whether it wrote. A reader never sees half a file."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
