"""Make text taken from manifests, reviews or metrics inert in Markdown/HTML (PR comments, reports).

A manifest description like ``<img src=x onerror=...>``, ``@everyone`` or a fake table must render as
the literal characters, never as markup, a mention or a table.
"""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md(text: object) -> str:
    """Escape for inline Markdown in GitHub comments: HTML entities, Markdown punctuation, mentions,
    and line breaks (a newline could start a table or a heading)."""
    value = str(text)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    value = _MD_SPECIAL.sub(r"\\\1", value)
    value = value.replace("@", "@\u200b")  # no mention, no notification
    value = re.sub(r"[\r\n]+", " ", value)
    return value


def code(text: object) -> str:
    """Inline code span that cannot be broken out of (backticks in the text are replaced)."""
    value = str(text).replace("`", "'").replace("\r", " ").replace("\n", " ")
    value = value.replace("<", "&lt;").replace(">", "&gt;")
    return f"`{value}`"
