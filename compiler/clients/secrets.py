"""Keeping tokens out of text: every message the git and GitHub clients let out passes ``redact``.
Imports nothing from quantgate, so both clients can share it."""

from __future__ import annotations

import re


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with each secret, any credentials embedded in a URL and any ``Authorization:``
    header value replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)
    return re.sub(r"(?i)(authorization:\s*\w+\s+)\S+", r"\1***", text)
