"""What a report needs beyond the lock, read from the repository at render time: the manifest's
owners and targets, and the text of the evaluation examples the report lists.

The lock holds numbers and example ids only (the runner's per-example results carry ids). The text is
read here from the evaluation file named in the lock, and only when that file still has the sha256
the lock recorded, so a report never pairs numbers with the wrong sentences. When the text cannot
be shown the report says why (``Context.texts_note``). Everything here is optional: no repository,
no manifest or no file leaves the report with the lock's numbers and a note.

Ids follow ``runners/datasets.py`` (a layer this package may not import): the ``id`` column when the
manifest maps one, else ``line-<n>`` with the 1-based line the row starts on. ``format: text``
(causal-lm perplexity) is cut into token windows (``chunk-<i>``) by the model's tokenizer, which the
compiler never loads, so windows are named by index only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.discover import find_repo_root
from compiler.files import file_sha256
from compiler.rows import RowError, iter_rows

#: What one example is called, and what its per-example score means, per task (docs/measuring.md).
EXAMPLE_NOUN = {"sentence-similarity": "pairs", "text-classification": "examples", "causal-lm": "windows"}
#: The runner's per-example score is higher-is-better (its negation below); reports show the error.
PER_EXAMPLE = {
    "sentence-similarity": ("rank error", "|rank(predicted) − rank(gold)| / N over the evaluation pairs; 0 = ranked exactly right"),
    "text-classification": ("loss", "cross-entropy of the gold label, in nats"),
    "causal-lm": ("loss", "mean negative log-likelihood per token of the window, in nats"),
}
TEXT_CHARS = 90


@dataclass
class Context:
    owners: dict[str, list[str]] = field(default_factory=dict)  # role -> ["@login", ...]
    task: str | None = None
    latency_target_ms: float | None = None
    texts: dict[str, str] = field(default_factory=dict)  # example id -> text (truncated)
    texts_note: str | None = None


def repository_root(lock: dict, root: Path | None) -> Path | None:
    """``root``, or the repository around the working directory when it holds the lock's manifest."""
    if root is not None:
        return Path(root)
    candidate = find_repo_root(Path.cwd())
    return candidate if (candidate / lock["manifest"]["path"]).is_file() else None


def load_context(lock: dict, root: Path | None, ids: list[str]) -> Context:
    ctx = Context()
    root = repository_root(lock, root)
    if root is None:
        ctx.texts_note = "text not shown: rendered outside the repository"
        return ctx
    try:
        from compiler.manifest.load import load_manifest

        manifest = load_manifest(root / lock["manifest"]["path"], root).manifest
    except Exception:  # noqa: BLE001 - an unreadable manifest only costs the report its extras
        ctx.texts_note = f"text not shown: {lock['manifest']['path']} could not be read"
        return ctx
    ctx.owners = {role: list(people) for role, people in manifest.owners.model_dump().items() if people}
    ctx.task = manifest.model.task
    ctx.latency_target_ms = manifest.envelope.latency_p95_ms
    if ids:
        ctx.texts, ctx.texts_note = _texts(root, lock, manifest, ids)
    return ctx


def _texts(root: Path, lock: dict, manifest: Any, ids: list[str]) -> tuple[dict[str, str], str | None]:
    spec = manifest.evaluation.dataset
    recorded = lock["inputs"]["evaluation_data"]
    path = root / recorded["path"]
    if spec.format == "text":
        return {}, f"text not shown: {spec.path} is one document cut into token windows by the model's tokenizer; chunk-N is window N"
    try:
        if recorded.get("sha256") and file_sha256(path) != recorded["sha256"]:
            return {}, f"text not shown: {recorded['path']} changed since the lock was written"
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}, f"text not shown: {recorded['path']} could not be read"
    wanted = set(ids)
    found: dict[str, str] = {}
    for record_id, parts in _records(spec, content):
        if record_id in wanted:
            found[record_id] = truncate(" ⟷ ".join(p for p in parts if p))
    note = None if len(found) == len(wanted) else f"text not found for {len(wanted) - len(found)} id(s) in {recorded['path']}"
    return found, note


def truncate(text: str, limit: int = TEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _csv_rows(content: str):
    """The rows as the runner read them (``compiler.rows``); a malformed file shows no text."""
    try:
        yield from iter_rows(content, "csv")
    except RowError:
        return


_TEXT_ROLES = ("text_a", "text", "prompt", "text_b", "completion")


def _records(spec: Any, content: str):
    """(id, texts) per row, in file order, as ``runners.datasets.read_examples`` numbers them."""
    columns = dict(spec.columns)
    header: list[str] | None = None
    count = 0
    if spec.format == "jsonl":
        rows = ((n, json.loads(line)) for n, line in enumerate(content.splitlines(), 1) if line.strip())
    elif spec.format == "tsv":
        rows = ((n, line.split("\t")) for n, line in enumerate(content.splitlines(), 1) if line.strip())
    else:
        rows = _csv_rows(content)
    for line, row in rows:
        if header is None and spec.header and spec.format != "jsonl":
            header = [str(c).strip() for c in row]
            continue

        def cell(key: Any, row: Any = row, header: list[str] | None = header) -> Any:
            try:
                if isinstance(row, dict):
                    return row.get(key)
                return row[header.index(key) if header is not None and isinstance(key, str) else int(key)]
            except (ValueError, IndexError, TypeError):
                return None

        record_id = str(cell(columns["id"])).strip() if "id" in columns else f"line-{line}"
        yield record_id, [str(cell(columns[r])) for r in _TEXT_ROLES if r in columns and cell(columns[r]) is not None]
        count += 1
        if spec.limit is not None and count >= spec.limit:
            return
