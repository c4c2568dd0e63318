"""The PR comment: one per manifest, found by its hidden marker, updated in place; the job summary;
and the final body inert whatever a manifest says (checked by parsing it as GitHub-flavoured
Markdown with raw HTML enabled, the way GitHub would read it)."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from compiler.cli import main
from compiler.gitops.comment import compose
from compiler.report.escape import md

MANIFEST = "manifests/minilm-stsb.yaml"
ATTACK = "<img src=x onerror=alert(1)> @everyone\n\n| play | sign-off |\n|---|---|\n| gate | approved |"


#: The only raw HTML quantgate writes: its marker and the folded <details> sections (fixed summaries).
OWN_HTML = re.compile(r"^(<details( open)?>|</details>|<summary>[^<>&]*</summary>)$")


def assert_inert(body: str, name: str = "minilm-stsb") -> None:
    """No raw HTML but our own marker and sections, no live mention, no table row claiming an approval."""
    parser = MarkdownIt("commonmark", {"html": True}).enable("table")
    tokens = parser.parse(body)
    flat = []
    for token in tokens:
        flat.append(token)
        flat.extend(token.children or [])
    html = [line.strip() for t in flat if t.type in ("html_block", "html_inline") for line in t.content.strip().splitlines() if line.strip()]
    assert html[:1] == [f"<!-- quantgate:{name} -->"], html
    foreign = [line for line in html[1:] if not OWN_HTML.match(line)]
    assert not foreign, foreign
    text = " ".join(t.content for t in flat if t.type == "text")
    assert "@everyone" not in text, "a live @everyone mention"
    cells = []
    for i, token in enumerate(tokens):
        if token.type in ("td_open", "th_open"):
            cells.append(tokens[i + 1].content.strip())
    assert "approved" not in cells, "a table cell that reads 'approved'"


def test_the_inertness_check_can_fail():
    for raw in ("<img src=x onerror=alert(1)>", "hi @everyone", "| gate | approved |\n|---|---|\n| a | b |",
                "<details>\n<summary><img src=x></summary>", "<details onclick=x>"):
        with pytest.raises(AssertionError):
            assert_inert(compose("minilm-stsb", raw))


def test_escaped_attack_is_inert_in_a_composed_body():
    assert_inert(compose("minilm-stsb", f"### quantgate: minilm-stsb\n\ndescription: {md(ATTACK)}\n"))


def test_compose_defuses_markers_inside_the_body():
    body = compose("a", "text <!-- quantgate:b --> more <!--quantgate:c-->")
    assert body.startswith("<!-- quantgate:a -->\n")
    assert body.count("<!-- quantgate:") == 1 and body.count("<!--quantgate") == 0


@pytest.fixture
def attacked(workspace, github, monkeypatch):
    """The workspace on a branch whose manifest description is hostile, PR #5 open."""
    repo = workspace.work
    text = (repo / MANIFEST).read_text()
    start = text.index("  description:")
    end = text.index("\n", start)
    quoted = ATTACK.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    (repo / MANIFEST).write_text(text[:start] + f'  description: "{quoted}"' + text[end:])
    for key, value in github.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(repo)
    github.open_pull(5, "author", "c" * 40, "d" * 40)
    return workspace


def test_plan_comment_is_one_comment_updated_in_place_and_inert(attacked, github, capsys, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["plan", MANIFEST, "--format", "markdown"]) == 0
    plan_md = tmp_path / "plan.md"
    plan_md.write_text(capsys.readouterr().out)
    assert main(["comment", MANIFEST, "--pr", "5", "--body-file", str(plan_md)]) == 0
    assert main(["comment", MANIFEST, "--pr", "5", "--body-file", str(plan_md)]) == 0  # same push again
    plan_md.write_text(plan_md.read_text() + "\nsecond push\n")
    assert main(["comment", MANIFEST, "--pr", "5", "--body-file", str(plan_md)]) == 0
    out = capsys.readouterr().out
    assert "created comment" in out and "unchanged comment" in out and "updated comment" in out
    comments = github.comments[5]
    assert len(comments) == 1
    body = comments[0]["body"]
    assert body.startswith("<!-- quantgate:minilm-stsb -->\n") and body.rstrip().endswith("second push")
    assert "| 4 | gate |" in body  # it is the real plan
    assert_inert(body)
    assert summary.read_text().count("quantgate plan") == 3  # the job summary gets every rendering
    assert "<!-- quantgate" not in summary.read_text()


def test_default_body_renders_plan_from_the_manifest(attacked, github, capsys):
    assert main(["comment", MANIFEST, "--pr", "5"]) == 0
    body = github.comments[5][0]["body"]
    assert_inert(body)
    assert "baseline" in body


def test_summary_only_posts_nothing(attacked, github, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["comment", MANIFEST, "--pr", "5", "--summary-only"]) == 0
    assert github.comments[5] == [] and "baseline" in summary.read_text()

