"""commit-back on real git repositories with a real bare remote: only quantgate files, the bot
identity, no force, rebase over a branch that moved meanwhile, exit 4 when it keeps moving."""

from __future__ import annotations

import stat

import pytest

from compiler.cli import main
from compiler.errors import Conflict, InvalidInput
from compiler.gitops.commitback import BOT_EMAIL, BOT_NAME, CommitBack

from .conftest import git

LOCK = "manifests/minilm-stsb.lock.yaml"


@pytest.fixture
def branch(demo_repo):
    """The PR branch pushed to the remote, with one lock change waiting in the clone."""
    git(demo_repo.work, "push", "-q", "-u", "origin", "quantize")
    demo_repo.write(LOCK, "schema_version: 1\nverdict: pass\n")
    demo_repo.write("reports/minilm-stsb/report.md", "# report\n")
    return demo_repo


def hook(repo, name: str, script: str) -> None:
    path = repo / ".git" / "hooks" / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def other_push_script(remote, other, marker: str, times: str = "once") -> str:
    """Shell that pushes a commit from another clone to the remote (the branch moving under us)."""
    guard = f'[ -e "{marker}" ] && exit 0\ntouch "{marker}"\n' if times == "once" else ""
    return (
        guard
        + f'cd "{other}" && unset GIT_DIR GIT_INDEX_FILE GIT_WORK_TREE && git pull -q --rebase origin quantize '
        + '&& echo "$(date +%s%N)" >> NOTES.md && git add NOTES.md && git commit -q -m "teammate: notes" '
        + "&& git push -q origin HEAD:quantize\n"
    )


def test_commits_only_quantgate_files_as_the_bot(branch):
    branch.write("README.md", "edited by hand, not for the bot\n")
    code = main(["commit-back", "manifests/minilm-stsb.yaml", "--root", str(branch.work), "--branch", "quantize"])
    assert code == 0
    author, committer, subject = git(branch.bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", "quantize").split("|")
    assert author == committer == f"{BOT_NAME} <{BOT_EMAIL}>"
    assert subject == "quantgate: record results for minilm-stsb"
    files = git(branch.bare, "show", "--name-only", "--format=", "quantize").split()
    assert sorted(files) == [LOCK, "reports/minilm-stsb/report.md"]
    assert "README.md" in git(branch.work, "status", "--porcelain")  # left alone


def test_refuses_anything_but_quantgate_files(branch):
    with pytest.raises(InvalidInput) as caught:
        CommitBack(branch.work, [LOCK, "manifests/minilm-stsb.yaml"], "x", branch="quantize")
    assert "manifests/minilm-stsb.yaml" in caught.value.render()
    assert main(["commit-back", "--path", "data/stsb/sts-test.tsv", "--root", str(branch.work)]) == 2


def test_staged_foreign_changes_stay_out_of_the_commit(branch):
    branch.write("README.md", "staged by someone\n")
    git(branch.work, "add", "README.md")
    CommitBack(branch.work, [LOCK], "quantgate: lock", branch="quantize").run()
    assert git(branch.bare, "show", "--name-only", "--format=", "quantize").split() == [LOCK]
    assert git(branch.work, "diff", "--cached", "--name-only") == "README.md"


def test_nothing_to_commit_is_a_no_op(demo_repo):
    git(demo_repo.work, "push", "-q", "-u", "origin", "quantize")
    before = git(demo_repo.bare, "rev-parse", "quantize")
    assert CommitBack(demo_repo.work, [LOCK], "x", branch="quantize").run().sha is None
    assert git(demo_repo.bare, "rev-parse", "quantize") == before


def test_race_remote_moves_during_the_run(branch, tmp_path):
    """Between our commit and our push a teammate pushes: we fetch, rebase the lock-only commit and
    push again. Nothing is lost and the lock commit sits alone on top."""
    other = branch.clone("teammate")
    git(other, "checkout", "-q", "quantize")
    before = git(branch.bare, "rev-parse", "quantize")
    hook(branch.work, "post-commit", other_push_script(branch, other, tmp_path / "raced"))
    pushed = CommitBack(branch.work, [LOCK, "reports/minilm-stsb/report.md"], "quantgate: record results",
                        branch="quantize", backoff_s=0).run()
    assert pushed.attempts == 2
    log = branch.log("quantize")
    assert log[0].split(" ", 1)[1] == f"{BOT_NAME} quantgate: record results"
    assert log[1].endswith("teammate: notes")
    assert log[2].split()[0] == before  # everything that was there is still there, in order
    assert git(branch.bare, "rev-list", "--count", f"{before}..quantize") == "2"
    top_files = git(branch.bare, "show", "--name-only", "--format=", "quantize").split()
    assert sorted(top_files) == [LOCK, "reports/minilm-stsb/report.md"]
    assert git(branch.bare, "show", "quantize:NOTES.md")  # the teammate's work is on the branch


def test_push_that_keeps_losing_gives_up_with_exit_4(branch, tmp_path):
    other = branch.clone("teammate")
    git(other, "checkout", "-q", "quantize")
    # every push attempt is preceded by a teammate's push (pre-push runs before the ref update)
    hook(branch.work, "pre-push", other_push_script(branch, other, tmp_path / "never", times="always"))
    job = CommitBack(branch.work, [LOCK], "quantgate: lock", branch="quantize", attempts=3, backoff_s=0)
    with pytest.raises(Conflict) as caught:
        job.run()
    assert caught.value.exit_code == 4 and "3 times" in str(caught.value)
    log = branch.log("quantize")
    assert all("quantgate" not in line for line in log)  # never forced over them
    assert sum("teammate: notes" in line for line in log) == 3


def test_rebase_conflict_on_the_same_lock_is_a_conflict(branch):
    other = branch.clone("teammate")
    git(other, "checkout", "-q", "quantize")
    (other / LOCK).write_text("schema_version: 1\nverdict: fail\n")
    git(other, "add", LOCK)
    git(other, "commit", "-q", "-m", "teammate: lock")
    git(other, "push", "-q", "origin", "quantize")
    with pytest.raises(Conflict):
        CommitBack(branch.work, [LOCK], "quantgate: lock", branch="quantize", backoff_s=0).run()
    assert git(branch.bare, "log", "-1", "--format=%s", "quantize") == "teammate: lock"
    assert not (branch.work / ".git" / "rebase-merge").exists()  # the rebase was aborted


def test_token_is_redacted_from_git_errors(branch):
    token = "ghs_do_not_print_me_123456"
    git(branch.work, "remote", "set-url", "origin", f"https://x-access-token:{token}@127.0.0.1:9/acme/models.git")
    with pytest.raises(Conflict) as caught:
        CommitBack(branch.work, [LOCK], "quantgate: lock", branch="quantize", attempts=1, token=token,
                   server_url="https://127.0.0.1:9").run()
    assert token not in str(caught.value)


def test_detached_head_pushes_to_the_named_branch(branch):
    """The run job checks out the PR head by sha (detached) and names the branch."""
    git(branch.work, "checkout", "-q", "--detach")
    pushed = CommitBack(branch.work, [LOCK], "quantgate: lock", branch="quantize").run()
    assert git(branch.bare, "rev-parse", "quantize") == pushed.sha
    with pytest.raises(InvalidInput):
        CommitBack(branch.work, [LOCK], "x")  # detached and no branch named


def test_without_manifests_commits_every_changed_quantgate_file(branch, capsys):
    branch.write("manifests/other.serving.yaml", "active: quantized\n")
    branch.write("notes.txt", "not ours\n")
    git(branch.work, "add", "notes.txt")
    git(branch.work, "mv", "README.md", "README.txt")  # a staged rename: two porcelain fields
    assert main(["commit-back", "--root", str(branch.work), "--branch", "quantize", "--what", "sign-off"]) == 0
    files = sorted(git(branch.bare, "show", "--name-only", "--format=", "quantize").split())
    assert files == [LOCK, "manifests/other.serving.yaml", "reports/minilm-stsb/report.md"]
    assert git(branch.bare, "log", "-1", "--format=%s", "quantize") == "quantgate: record sign-off"


def test_unreachable_remote_is_exit_4_not_a_crash(branch, capsys):
    git(branch.work, "remote", "set-url", "origin", str(branch.bare.parent / "gone.git"))
    code = main(["commit-back", "manifests/minilm-stsb.yaml", "--root", str(branch.work), "--branch", "quantize", "--attempts", "2"])
    assert code == 4
    assert "internal error" not in capsys.readouterr().err
