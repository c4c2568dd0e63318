"""The rows of a dataset file, the one definition of how quantgate reads them: the runner
(``runners.datasets``), validate (``compiler.manifest.checks``) and the report (degraded examples'
text) all iterate with ``iter_rows``, so validate finds a problem exactly where the run would.

- ``tsv``: one row per non-blank line, split on tabs (no quoting);
- ``csv``: the ``csv`` module's dialect; a row is located at the line it starts on;
- ``jsonl``: one JSON object per non-blank line.

A leaf: imports nothing from quantgate. Problems raise ``RowError(line, message)``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

FORMATS = ("tsv", "csv", "jsonl")


class RowError(ValueError):
    """A row that cannot be read: ``line`` (1-based) and what is wrong."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "a list", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


def iter_rows(text: str, fmt: str) -> Iterator[tuple[int, Any]]:
    """(1-based starting line, row) for each non-blank row of ``text`` in format ``fmt``: a list of
    cells (tsv, csv) or a dict (jsonl). ``RowError`` on malformed CSV or JSON; ``ValueError`` on an
    unknown format."""
    if fmt == "tsv":
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                yield number, raw.split("\t")
    elif fmt == "csv":
        reader = csv.reader(io.StringIO(text))
        start = 1
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield start, row
                start = reader.line_num + 1
        except csv.Error as exc:
            raise RowError(start, f"malformed CSV: {exc}") from exc
    elif fmt == "jsonl":
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise RowError(number, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
            except RecursionError as exc:
                raise RowError(number, "invalid JSON: nested too deeply") from exc
            if not isinstance(obj, dict):
                raise RowError(number, f"each line must be a JSON object ({{\"key\": value, ...}}), not {json_kind(obj)}")
            yield number, obj
    else:
        raise ValueError(f"unknown dataset format {fmt!r} (one of {', '.join(FORMATS)})")
