"""Read evaluation and calibration data into ``Record``s, in file order, with located errors.

Formats:
- ``tsv``: one row per line, split on tabs, no quoting (STS-B's sentences contain bare quotes);
- ``csv``: the ``csv`` module's dialect (quoted fields may span lines; a row is located at the line
  it starts on);
- ``jsonl``: one JSON object per line; columns are keys;
- ``text``: the whole file as one record (``causal-lm`` perplexity windows are cut later, by tokens).

``columns`` maps a task role (``score``, ``text_a``, ``text_b``, ``label``, ``text``, ``prompt``,
``completion``, ``id``) to a 0-based column index, or to a column name when ``header`` is set (tsv,
csv) or for jsonl. Extra columns are ignored. Blank lines are seen.

Example ids are stable: the ``id`` column when mapped, else ``line-<n>`` with the 1-based line the
row starts on. A malformed row is a ``RunnerInputError`` located ``path:line``. ``limit`` keeps the
first N records in file order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from compiler.rows import FORMATS, RowError, iter_rows
from runners.base import DatasetSpec, RunnerInputError

#: Required and optional column roles per task (mirrors compiler.manifest.model.TASK_COLUMNS).
REQUIRED = {
    "sentence-similarity": ("score", "text_a", "text_b"),
    "text-classification": ("label", "text"),
    "causal-lm": ("prompt", "completion"),
}
OPTIONAL = {
    "sentence-similarity": ("id",),
    "text-classification": ("text_b", "id"),
    "causal-lm": ("id",),
}
#: Roles that may be given for calibration data with another task's columns (text-only use).
TEXT_ROLES = ("text", "text_a", "text_b", "prompt", "completion")


@dataclass(frozen=True)
class Record:
    """One example. ``text`` is the first text (text_a / text / prompt); ``text_b`` the second
    sentence (sentence-similarity, optional pair classification); ``score`` the gold similarity;
    ``label`` the gold class as written; ``completion`` the expected continuation (causal-lm)."""

    id: str
    text: str
    text_b: str | None = None
    score: float | None = None
    label: str | None = None
    completion: str | None = None
    line: int = 0

    @property
    def texts(self) -> tuple[str, ...]:
        """Every text of the record, for calibration inputs."""
        return tuple(t for t in (self.text, self.text_b, self.completion) if t is not None)


def read_examples(spec: DatasetSpec, task: str) -> list[Record]:
    """The records of ``spec`` for ``task`` (see the module docstring for formats and ids)."""
    if task not in REQUIRED:
        raise RunnerInputError(f"unknown task {task!r}")
    try:
        with open(spec.path, encoding="utf-8", newline="") as handle:
            content = handle.read()
    except FileNotFoundError as exc:
        raise RunnerInputError(f"dataset file not found: {spec.path}") from exc
    except UnicodeDecodeError as exc:
        raise RunnerInputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", location=spec.path) from exc

    if spec.format == "text":
        records = [Record(id="text", text=content, line=1)] if content.strip() else []
    else:
        roles = _roles(spec, task)
        rows = _rows(spec, content)
        records = []
        header: list[str] | None = None
        seen = 0
        for line, row in rows:
            if header is None and spec.header and spec.format != "jsonl":
                header = [str(c).strip() for c in row]
                continue
            seen += 1
            if seen <= spec.skip:
                continue
            records.append(_record(spec, task, roles, header, line, row))
            if spec.limit is not None and len(records) >= spec.limit:
                break
    if not records:
        raise RunnerInputError("the dataset has no examples", location=spec.path)
    _check_unique_ids(spec, records)
    return records


def _roles(spec: DatasetSpec, task: str) -> dict[str, Any]:
    columns = dict(spec.columns)
    missing = [r for r in REQUIRED[task] if r not in columns]
    if missing:
        # Calibration data may name only texts; evaluation data must map every required role.
        if not any(r in columns for r in TEXT_ROLES):
            raise RunnerInputError(f"columns: task {task} needs {', '.join(REQUIRED[task])}; missing {', '.join(missing)}", location=spec.path)
    known = set(REQUIRED[task]) | set(OPTIONAL[task]) | set(TEXT_ROLES) | {"score", "label"}
    unknown = sorted(set(columns) - known)
    if unknown:
        raise RunnerInputError(f"columns: unknown role(s) {', '.join(unknown)} for task {task}", location=spec.path)
    for role, key in columns.items():
        if spec.format == "jsonl" and not isinstance(key, str):
            raise RunnerInputError(f"columns.{role}: jsonl columns are keys (names), not {key!r}", location=spec.path)
        if isinstance(key, int) and key < 0:
            raise RunnerInputError(f"columns.{role}: column index must be 0 or more, not {key}", location=spec.path)
        if isinstance(key, str) and spec.format in ("tsv", "csv") and not spec.header:
            raise RunnerInputError(f"columns.{role}: {key!r} is a column name but the file has no header (set header: true or use a 0-based index)", location=spec.path)
    return columns


def _rows(spec: DatasetSpec, content: str) -> Iterator[tuple[int, Any]]:
    """(1-based starting line, row) for each non-blank row (``compiler.rows``, shared with validate)."""
    if spec.format not in FORMATS:
        raise RunnerInputError(f"format: unknown dataset format {spec.format!r}", location=spec.path)
    try:
        yield from iter_rows(content, spec.format)
    except RowError as exc:
        raise RunnerInputError(exc.message, location=f"{spec.path}:{exc.line}") from exc


def _cell(spec: DatasetSpec, header: list[str] | None, line: int, row: Any, role: str, key: Any) -> Any:
    where = f"{spec.path}:{line}"
    if isinstance(row, dict):
        if key not in row:
            raise RunnerInputError(f"{role}: key {key!r} missing", location=where)
        return row[key]
    if isinstance(key, str):
        if header is None or key not in header:
            raise RunnerInputError(f"columns.{role}: no column named {key!r} in the header ({', '.join(header or [])})", location=f"{spec.path}:1")
        key = header.index(key)
    if key >= len(row):
        raise RunnerInputError(f"row has {len(row)} columns; {role} is column {key} (0-based)", location=where)
    return row[key]


def _record(spec: DatasetSpec, task: str, roles: dict[str, Any], header: list[str] | None, line: int, row: Any) -> Record:
    where = f"{spec.path}:{line}"
    values = {role: _cell(spec, header, line, row, role, key) for role, key in roles.items()}
    for role in TEXT_ROLES:
        if role in values and not isinstance(values[role], str):
            raise RunnerInputError(f"{role}: expected text, got {values[role]!r}", location=where)
    score = None
    if "score" in values:
        try:
            score = float(values["score"])
        except (TypeError, ValueError):
            raise RunnerInputError(f"score: {values['score']!r} is not a number", location=where) from None
        if not math.isfinite(score):
            raise RunnerInputError(f"score: {values['score']!r} is not a finite number", location=where)
    label = None
    if "label" in values:
        label = str(values["label"]).strip()
        if not label:
            raise RunnerInputError("label: empty", location=where)
    first = values.get("text_a", values.get("text", values.get("prompt")))
    if first is None:
        first = values.get("text_b", values.get("completion", ""))
    text_b = values.get("text_b") if ("text_a" in values or "text" in values) else None
    record_id = str(values["id"]).strip() if "id" in values else f"line-{line}"
    return Record(id=record_id, text=first, text_b=text_b, score=score, label=label,
                  completion=values.get("completion"), line=line)


def _check_unique_ids(spec: DatasetSpec, records: list[Record]) -> None:
    seen: dict[str, int] = {}
    for record in records:
        if record.id in seen:
            raise RunnerInputError(f"id {record.id!r} repeats the id of line {seen[record.id]}", location=f"{spec.path}:{record.line}")
        seen[record.id] = record.line
