"""The one quantgate comment per manifest on a pull request, and the same Markdown in the job summary.

One comment per manifest, found by the hidden marker ``<!-- quantgate:<name> -->`` at its start and
by its author (the workflow's bot; nobody else's comment is edited, even one quoting the marker).
Per manifest, not per PR: matrix jobs for different manifests run in parallel and would otherwise
race on one comment. The body is the rendered plan/report (``compiler.report.render``: the verdict,
the decision asked of reviewers, who must approve by ``@login``, the deltas table, then folded
``<details>`` sections; it escapes every manifest-derived string). Any quantgate marker inside the
body is defused here, so a body can never impersonate another manifest's comment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from compiler.clients import actions
from compiler.clients.github import BOT_LOGIN, GitHub, context_from_env
from compiler.errors import InvalidInput, Problem


def marker(name: str) -> str:
    return f"<!-- quantgate:{name} -->"


def compose(name: str, body: str) -> str:
    """The final comment body: the marker line, then ``body`` with any quantgate marker defused."""
    safe = body.replace("<!-- quantgate", "&lt;!-- quantgate").replace("<!--quantgate", "&lt;!--quantgate")
    return f"{marker(name)}\n{safe.strip()}\n"


def read_body(body_file: str) -> str:
    """The Markdown in ``body_file`` (``-``: standard input); ``InvalidInput`` when unreadable."""
    if body_file == "-":
        return sys.stdin.read()
    try:
        return Path(body_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(Problem(path=body_file, message=f"cannot read: {reason}")) from exc


@dataclass(frozen=True)
class Posted:
    marker: str
    outcome: str  # created | updated | unchanged | summary-only
    comment_id: int | None
    pull_request: int


def post_comment(name: str, body: str, pull_request: int, *, bot_login: str | None = None,
                 summary_only: bool = False, github: GitHub | None = None) -> Posted:
    """Append the composed body to the job summary, then create or update the manifest's comment
    (GitHub context from the Actions environment unless ``github`` is given)."""
    text = compose(name, body)
    actions.append_summary(text.split("\n", 1)[1])
    if summary_only:
        return Posted(marker(name), "summary-only", None, pull_request)
    github = github or GitHub(context_from_env())
    outcome, comment_id = github.upsert_comment(pull_request, marker(name), text, bot_login or BOT_LOGIN)
    return Posted(marker(name), outcome, comment_id, pull_request)
