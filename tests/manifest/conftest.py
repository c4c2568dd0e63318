"""Fixtures for the manifest tests: a throwaway quantgate repository and the demo manifest's text."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_support import DEMO, make_repo


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


@pytest.fixture()
def demo_text() -> str:
    return DEMO.read_text(encoding="utf-8")
