"""Git and GitHub-environment isolation shared by the gitops tests and the workflow harness: the
machine's git settings (signing, hooks, default branch) and a CI runner's GITHUB_* variables cannot
change what the tests see."""

from __future__ import annotations

from pathlib import Path

GITCONFIG = ("[user]\n\tname = Test Person\n\temail = person@example.com\n"
             "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[advice]\n\tdetachedHead = false\n")
GITHUB_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_EVENT_PATH", "GITHUB_HEAD_REF",
                    "GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL")


def isolate_git(home: Path, monkeypatch, extra: str = "") -> None:
    """A global git config of our own under ``home`` (plus ``extra`` lines), no system config, and none
    of the runner's GITHUB_* variables."""
    config = home / "gitconfig"
    config.write_text(GITCONFIG + extra)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in GITHUB_VARIABLES:
        monkeypatch.delenv(key, raising=False)
