"""Git isolation for the workflow harness (the same as tests/gitops: the machine's git settings
cannot change what the jobs see)."""

from __future__ import annotations

import pytest
from gitops.git_isolation import isolate_git


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory, monkeypatch):
    # GitHub serves any reachable commit by sha; the jobs fetch the base and head that way.
    isolate_git(tmp_path_factory.mktemp("githome"), monkeypatch, extra="[uploadpack]\n\tallowAnySHA1InWant = true\n")
