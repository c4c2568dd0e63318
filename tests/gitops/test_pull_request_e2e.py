"""A whole pull request, as the workflows play it, with real parts: a git repository with a bare
remote, the loopback GitHub, the real CLI, the real MiniLM on real STS-B data.

manifest change -> changed (matrix) -> plan comment -> run -> results comment -> lock committed back
-> approvals arrive (one still only in the webhook payload) -> sign-off recorded and committed back
-> status success on the new head -> verify passes. Nothing anyone pushed is lost on the way."""

from __future__ import annotations

import json

import pytest

from compiler.cli import main
from compiler.gitops.commitback import BOT_NAME
from compiler.playbook.lockfile import read_lock

from .conftest import git
from .github_server import WEBHOOKS
from .test_comment import assert_inert

MANIFEST = "manifests/minilm-stsb.yaml"
LOCK = "manifests/minilm-stsb.lock.yaml"


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.model
@pytest.mark.slow
def test_a_whole_pull_request(workspace, github, capsys, monkeypatch, tmp_path):
    repo = workspace.work
    for key, value in github.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.chdir(repo)
    # 0. on main, reviewed earlier: the product role goes to a team (a pull request cannot choose its
    # own signers: owners are read from the base branch)
    text = (repo / MANIFEST).read_text().replace('product_owner: ["@product-lead"]', 'product_owner: ["@acme/product"]')
    (repo / MANIFEST).write_text(text)
    workspace.commit("minilm-stsb: the product team signs")
    git(repo, "push", "-q", "origin", "main")
    base = git(repo, "rev-parse", "main")

    # 1. the request: loosen the gate
    git(repo, "checkout", "-q", "-b", "quantize")
    (repo / MANIFEST).write_text(text.replace("max_drop: 0.01", "max_drop: 0.02"))
    c1 = workspace.commit("minilm-stsb: loosen the gate")
    git(repo, "push", "-q", "-u", "origin", "quantize")
    github.open_pull(1, "author", c1, base, head_ref="quantize")
    github.team("acme", "product", ["dana"])

    # 2. which manifests, on which runners
    code, out = cli(capsys, "changed", "--base", base, "--head", "HEAD")
    assert code == 0
    assert json.loads(out.splitlines()[0]) == {"include": [{"manifest": MANIFEST, "name": "minilm-stsb", "runs_on": ["ubuntu-latest"]}]}

    # 3. the plan comment
    code, plan = cli(capsys, "plan", MANIFEST, "--format", "markdown")
    assert code == 0
    (tmp_path / "plan.md").write_text(plan)
    assert cli(capsys, "comment", MANIFEST, "--pr", "1", "--body-file", str(tmp_path / "plan.md"))[0] == 0
    assert len(github.comments[1]) == 1

    # 4. the run, on the real model, then the results into the same comment
    code, out = cli(capsys, "run", MANIFEST)
    assert code == 0, out
    assert "locked:" in out
    assert cli(capsys, "report", MANIFEST)[0] == 0
    assert cli(capsys, "comment", MANIFEST, "--pr", "1")[0] == 0
    assert len(github.comments[1]) == 1, "a second comment instead of an update"
    body = github.comments[1][0]["body"]
    assert body != "<!-- quantgate:minilm-stsb -->\n" + plan.strip() + "\n"  # updated with results
    assert "spearman" in body
    assert_inert(body)

    # 5. the lock committed back by the bot
    code, out = cli(capsys, "commit-back", MANIFEST, "--branch", "quantize")
    assert code == 0, out
    c2 = git(repo, "rev-parse", "HEAD")
    assert git(workspace.bare, "rev-parse", "quantize") == c2
    files = git(workspace.bare, "show", "--name-only", "--format=", c2).split()
    assert LOCK in files and all(f.endswith((".lock.yaml", ".rules.yaml", ".serving.yaml")) or f.startswith("reports/") for f in files)
    github.push(1, c2)
    assert read_lock(repo / LOCK).data()["verdict"] == "locked"

    # 6. no approvals yet: pending, and who is missing
    code, out = cli(capsys, "signoff", MANIFEST, "--pr", "1", "--no-record")
    assert code == 1
    assert "missing: ml_engineer" in out and "missing: platform_lead" in out and "missing: product_owner" in out
    assert github.statuses[-1]["state"] == "pending" and github.statuses[-1]["sha"] == c2

    # 7. approvals arrive, on the commit that carries CI's numbers (an approval given before the lock
    # existed would not count for them), the last one only in the event payload so far
    github.review(1, "ml-eng", "APPROVED", c2)
    github.review(1, "platform-eng", "APPROVED", c2)
    github.review(1, "author", "APPROVED", c2)  # the author cannot sign; must not matter
    payload = json.loads((WEBHOOKS / "pull_request_review" / "submitted.payload.json").read_text())
    payload["review"].update(id=777, state="approved", commit_id=c2)
    payload["review"]["user"]["login"] = "dana"
    (tmp_path / "event.json").write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "event.json"))
    code, out = cli(capsys, "signoff", MANIFEST, "--pr", "1")
    assert code == 0, out
    assert github.statuses[-1]["state"] == "success" and github.statuses[-1]["sha"] == c2
    signoff = read_lock(repo / LOCK).data()["signoff"]
    assert signoff["status"] == "complete" and signoff["head_sha"] == c2
    assert {(r["role"], r["login"]) for r in signoff["records"]} == {
        ("ml_engineer", "ml-eng"), ("platform_lead", "platform-eng"), ("product_owner", "dana")}
    assert {r["review_id"] for r in signoff["records"]} >= {777}

    # 8. the sign-off record committed back; the status follows the new head
    code, out = cli(capsys, "commit-back", MANIFEST, "--branch", "quantize", "--what", "sign-off")
    assert code == 0, out
    c3 = git(repo, "rev-parse", "HEAD")
    assert git(workspace.bare, "show", "--name-only", "--format=", c3).split() == [LOCK]
    assert git(workspace.bare, "log", "-1", "--format=%an %s", c3) == f"{BOT_NAME} quantgate: record sign-off for minilm-stsb"
    github.push(1, c3)
    code, out = cli(capsys, "signoff", MANIFEST, "--pr", "1", "--sha", c3, "--no-record")
    assert code == 0, out
    assert github.statuses[-1] == {**github.statuses[-1], "state": "success", "sha": c3}

    # 9. the locked results stand, and the branch history is whole
    code, out = cli(capsys, "verify", MANIFEST)
    assert code == 0, out
    log = git(workspace.bare, "log", "--format=%H", "quantize").split()
    assert log[:4] == [c3, c2, c1, base]
    assert len(github.comments[1]) == 1
