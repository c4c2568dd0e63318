"""Checks that need the repository, not just the manifest: files exist and stay inside it, the
model directory is there, remote code is allowlisted, names are unique across ``manifests/``.

Contract: ``repo_problems(loaded, config, names) -> list[Problem]``, errors and warnings, each
located at the key it is about. A missing *model directory* is a warning, not an error: demo and
in-house models live in git-ignored directories that ``scripts/setup`` (or the team's own step)
materialises, and the pull-request check that validates manifests must not need the weights.
``quantgate run`` fails on it later with the same hint.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from compiler.errors import Problem
from compiler.manifest.load import LoadedManifest, display
from compiler.manifest.locate import problem_at
from compiler.manifest.source import Source
from compiler.rows import RowError, iter_rows

#: What a user does when a repo-relative model directory is missing.
SETUP_HINT = "materialise it before `quantgate run` (validate and plan do not need it; in quantgate's own repository: scripts/setup)"


def repo_problems(loaded: LoadedManifest, config: Any, names: dict[str, list[Path]] | None = None) -> list[Problem]:
    """Every repository-level problem of ``loaded``. ``config`` is the ``RepoConfig``; ``names`` maps
    metadata names to the manifest files that use them (see ``manifest_names``)."""
    manifest = loaded.manifest
    root = real_path(loaded.root)
    source = Source(loaded.display_path, loaded.text)
    problems: list[Problem] = []

    def add(at: tuple, message: str, severity: str = "error") -> None:
        problems.append(problem_at(source, loaded.positions, at, message, severity=severity))

    task = manifest.model.task
    generation = manifest.evaluation.generation
    for at, dataset in (
        (("evaluation", "dataset"), manifest.evaluation.dataset),
        (("quantization", "calibration", "dataset"), manifest.quantization.calibration.dataset),
        *([(("evaluation", "generation", "prompts"), generation.prompts)] if generation is not None else []),
        *([(("quantization", "calibration", "production"), manifest.quantization.calibration.production)]
          if manifest.quantization.calibration.production is not None else []),
    ):
        why = file_problem(root, dataset.path)
        if why:
            add(at + ("path",), why)
            continue
        found, count = data_problems(root, dataset, task)
        for below, message in found:
            add(at + below, message)
        if count is None:
            continue
        if at in (("evaluation", "generation", "prompts"), ("quantization", "calibration", "production")):
            continue  # any number of prompts (or production inputs) will do
        if at[0] == "evaluation":
            fraction = manifest.evaluation.hardest_fraction
            need = min_evaluation_examples(fraction)
            if count < need:
                where, has = _counted(dataset, count)
                add(at + where, f"{has}; hardest_fraction {fraction:g} needs at least {need} (at least one example "
                    f"in the hardest fraction, and a hardest slice, never under {MIN_HARDEST}, that leaves some out)")
        else:
            samples = manifest.quantization.calibration.samples
            if count < samples:
                _, has = _counted(dataset, count)
                add(("quantization", "calibration", "samples"),
                    f"{samples} samples requested, but {has}: lower samples to {count} or add data")

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


def _counted(dataset: Any, count: int) -> tuple[tuple, str]:
    """Where a too-small dataset is the manifest's fault (``limit`` when it cut the rows), and how to
    say how many examples it has."""
    examples = f"{count} example{'s' if count != 1 else ''}"
    if dataset.limit is not None and count == dataset.limit:
        return ("limit",), f"limit: {dataset.limit} keeps {examples} of {dataset.path!r}"
    return ("path",), f"{dataset.path!r} has {examples}"


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
    """Start a run: forget resolved folders and read data files (the tree may have changed since the
    last run)."""
    _real_dir.cache_clear()
    _FILES.clear()
    _ROWS.clear()
    _CHECKED.clear()


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


# ------------------------------------------------------------------------------------- data files
#
# What the runner will read, checked without it: ``runners/datasets.py`` (``read_examples``) defines
# the formats, and the compiler may not import it, so its light parsing is repeated here rule for rule
# (tests/manifest/test_data.py runs both over the same files and requires them to agree). Each file is
# read once per run, keyed by (real path, size, mtime) -> sha256, and parsed once per (sha256,
# format), lazily: a ``limit`` stops the parse where the runner stops.

#: The hardest slice is never smaller than this many examples (``runners.evaluate.MIN_HARDEST``).
MIN_HARDEST = 3
#: Roles whose values must be text (``runners.datasets.TEXT_ROLES``).
TEXT_ROLES = ("text", "text_a", "text_b", "prompt", "completion")

_FILES: dict[tuple, tuple[str, Any]] = {}  # (real path, size, mtime_ns) -> (sha256, text or _DataError)
_ROWS: dict[tuple[str, str], _Rows] = {}  # (sha256, format) -> rows parsed so far
_CHECKED: dict[tuple, tuple[list[tuple[tuple, str]], int | None]] = {}  # one answer per (file, dataset spec)


def min_evaluation_examples(fraction: float) -> int:
    """The fewest evaluation examples for ``hardest_fraction``: enough that the fraction itself holds
    one example (``fraction * n >= 1``), and more than ``MIN_HARDEST`` so that the hardest slice (at
    least ``MIN_HARDEST`` examples, see ``runners/evaluate.py``) is not the whole set, which would
    make its gate repeat the overall one."""
    return max(math.ceil(1 / fraction - 1e-9), MIN_HARDEST + 1)


class _DataError(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class _Rows:
    """A data file's non-blank rows as ``(1-based starting line, row)``, parsed as far as asked."""

    def __init__(self, text: str, fmt: str):
        self.rows: list[tuple[int, Any]] = []
        self.error: _DataError | None = None
        self._iter = _iter_rows(text, fmt)
        self._done = False

    def upto(self, count: int | None) -> list[tuple[int, Any]]:
        """The first ``count`` rows (all with None), or fewer when the file ends or breaks first."""
        while not self._done and (count is None or len(self.rows) < count):
            try:
                self.rows.append(next(self._iter))
            except StopIteration:
                self._done = True
            except _DataError as exc:
                self.error, self._done = exc, True
        return self.rows if count is None else self.rows[:count]


def _iter_rows(text: str, fmt: str) -> Iterator[tuple[int, Any]]:
    """``compiler.rows.iter_rows`` (the runner reads the same way), its errors as ``_DataError``."""
    try:
        yield from iter_rows(text, fmt)
    except RowError as exc:
        raise _DataError(exc.line, exc.message) from exc


def _read_data(path: Path) -> tuple[str, Any]:
    """(sha256, decoded text or ``_DataError``) of a data file, read once per run."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILES:
        data = path.read_bytes()
        try:
            text: Any = data.decode("utf-8")  # as the runner reads it: a BOM stays part of the first cell
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            text = _DataError(line, f"not UTF-8 (byte 0x{data[exc.start:exc.start + 1].hex()}): save the file as UTF-8")
        _FILES[key] = (hashlib.sha256(data).hexdigest(), text)
    return _FILES[key]


def data_problems(root: Path, dataset: Any, task: str) -> tuple[list[tuple[tuple, str]], int | None]:
    """What ``runners.datasets.read_examples(dataset, task)`` would refuse, as (location below the
    dataset mapping, message) with the first offending row as ``path:line``; and how many examples the
    run gets (None for format text, whose windows need the tokenizer, or for a file that breaks)."""
    try:
        sha, text = _read_data(real_path(root / dataset.path))
    except OSError as exc:
        return [(("path",), f"cannot read {dataset.path!r}: {exc.strerror or exc}")], None
    key = (sha, dataset.path, dataset.format, dataset.header, tuple(sorted(dataset.columns.items())), dataset.limit, task)
    if key not in _CHECKED:
        _CHECKED[key] = _check_data(sha, text, dataset)
    return _CHECKED[key]


def _check_data(sha: str, text: Any, dataset: Any) -> tuple[list[tuple[tuple, str]], int | None]:
    path = dataset.path
    if isinstance(text, _DataError):
        return [(("path",), f"{_at_line(path, text.line)}: {text.message}")], None
    if dataset.format == "text":
        if not text.strip():
            return [(("path",), f"{path!r} has no examples (the file is empty)")], None
        return [], None
    rows = _ROWS.setdefault((sha, dataset.format), _Rows(text, dataset.format))
    has_header = dataset.header and dataset.format != "jsonl"
    wanted = None if dataset.limit is None else dataset.limit + has_header
    taken = rows.upto(wanted)
    problems: list[tuple[tuple, str]] = []
    broken = rows.error is not None and (wanted is None or len(taken) < wanted)
    if broken:
        problems.append((("path",), f"{_at_line(path, rows.error.line)}: {rows.error.message}"))
    header: list[str] | None = None
    if has_header and taken:
        header = [str(cell).strip() for cell in taken[0][1]]
        header_line = taken[0][0]
        taken = taken[1:]
    found: dict[str, list] = {}  # role -> [message of the first bad row, how many more]

    def bad(role: str, message: str) -> None:
        if role in found:
            found[role][1] += 1
        else:
            found[role] = [message, 0]

    indices: dict[str, Any] = {}
    for role, ref in dataset.columns.items():
        if isinstance(ref, str) and dataset.format != "jsonl":
            if header is None:
                continue  # no rows at all: reported below as no examples
            if ref not in header:
                problems.append((("columns", role), f"no column {ref!r} in the header of {_at_line(path, header_line)}"
                                 f"{_did_you_mean(ref, header)}; it has: {_listing(header)}"))
                continue
            indices[role] = header.index(ref)
        else:
            indices[role] = ref
    ids: dict[str, int] = {}
    for line, row in taken:
        where = _at_line(path, line)
        values: dict[str, Any] = {}
        for role, ref in indices.items():
            if isinstance(row, dict):
                if ref not in row:
                    bad(role, f"key {ref!r} missing at {where}{_did_you_mean(ref, [str(k) for k in row])}; the line has: {_listing(row)}")
                    continue
            elif ref >= len(row):
                width = len(row)
                hint = " (spaces instead of tabs?)" if dataset.format == "tsv" and width == 1 else ""
                named = f" ({dataset.columns[role]!r})" if isinstance(dataset.columns[role], str) else ""
                has = f"{width} columns (0-{width - 1})" if width > 1 else "1 column (0)"
                bad(role, f"column {ref}{named} does not exist at {where}: the row has {has}{hint}")
                continue
            values[role] = row[ref]
        for role, value in values.items():
            if role in TEXT_ROLES and not isinstance(value, str):
                bad(role, f"expected text at {where}, got {_short(value)}")
            elif role == "score":
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    bad(role, f"score {_short(value)} at {where} is not a number")
                    continue
                if not math.isfinite(number):
                    bad(role, f"score {_short(value)} at {where} is not a finite number")
            elif role == "label" and not str(value).strip():
                bad(role, f"empty label at {where}")
            elif role == "id":
                ident = str(value).strip()
                if ident in ids:
                    bad(role, f"id {ident!r} at {where} repeats the id of line {ids[ident]}")
                else:
                    ids[ident] = line
    for role, (message, more) in found.items():
        if more:
            message += f"; {more} more row{'s' if more != 1 else ''} like it"
        problems.append((("columns", role), message))
    if broken:
        return problems, None
    if not taken:
        problems.append((("path",), f"{path!r} has no examples" + (" (only a header)" if header is not None else "")))
        return problems, None
    return problems, len(taken)


def _at_line(path: str, line: int) -> str:
    return f"{path}:{line}"


def _did_you_mean(given: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == given.lower()][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(names: Iterable[Any], most: int = 12) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
