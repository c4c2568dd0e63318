"""The report tests reuse the playbook's throwaway repository and fake runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "playbook"))

from playbook_support import Repo, make_repo  # noqa: E402


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)
