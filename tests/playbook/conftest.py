"""A throwaway quantgate repository per test: a manifest, small data files, a tiny model folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from playbook_support import Repo, make_repo  # noqa: E402


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)
