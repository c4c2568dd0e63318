"""The GitHub Actions runner, the one place that reads and writes its files: step outputs
(``$GITHUB_OUTPUT``) and the job summary (``$GITHUB_STEP_SUMMARY``). Outside Actions (the variables
unset) every call is a no-op, so the same code runs on a laptop."""

from __future__ import annotations

import os


def _append(variable: str, text: str) -> bool:
    path = os.environ.get(variable)
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
    return True


def set_outputs(**values: object) -> bool:
    """``name=value`` lines for the step's outputs (values must be one line); whether it wrote."""
    return _append("GITHUB_OUTPUT", "".join(f"{name}={value}\n" for name, value in values.items()))


def append_summary(markdown: str) -> bool:
    """Append Markdown to the job summary; whether it wrote."""
    return _append("GITHUB_STEP_SUMMARY", markdown if markdown.endswith("\n") else markdown + "\n")


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def head_ref() -> str | None:
    """The pull request's head branch (``$GITHUB_HEAD_REF``, set on pull_request events)."""
    return os.environ.get("GITHUB_HEAD_REF") or None


def ref_name() -> str | None:
    """The branch or tag the workflow runs on (``$GITHUB_REF_NAME``)."""
    return os.environ.get("GITHUB_REF_NAME") or None
