"""Repository policy (``quantgate.yaml``) judges a pull request from its base commit, never from the
pull request itself. The attack: a PR adds its own model source to ``trusted_remote_code`` so that
validate's refusal turns into ok (and ``run`` would execute the model's code). With
``QUANTGATE_POLICY_REF`` set to the base (as the generated workflows do) the PR's copy is ignored."""

from __future__ import annotations

from compiler.cli import main
from compiler.clients.git import Git


def test_a_pr_added_trusted_remote_code_is_ignored_when_policy_comes_from_base(demo_repo, capsys, monkeypatch):
    manifest = demo_repo.work / "manifests" / "minilm-stsb.yaml"
    base = Git.open(demo_repo.work).head()  # the fixture's HEAD is the pull request's base
    text = manifest.read_text().replace("trust_remote_code: false", "trust_remote_code: true")
    demo_repo.write("manifests/minilm-stsb.yaml", text)
    source = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("source:"))
    demo_repo.write("quantgate.yaml", f"trusted_remote_code: [{source!r}]\n")
    demo_repo.commit("trust my own model's code")

    root = str(demo_repo.work)
    assert main(["validate", "--root", root]) == 0  # the PR's own policy vouches for it: the attack, locally
    capsys.readouterr()
    monkeypatch.setenv("QUANTGATE_POLICY_REF", base)
    assert main(["validate", "--root", root]) == 2
    assert "trust_remote_code: refused" in capsys.readouterr().err
