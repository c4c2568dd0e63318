"""Report, plan and comment Markdown: escaped, complete, deterministic (plots included)."""

from __future__ import annotations

import json
import shutil

from fake_runner import FakeRunner, Script
from markdown_it import MarkdownIt

from compiler import api
from compiler.cli import main
from compiler.playbook.lockfile import read_lock
from compiler.report.render import render_comment_markdown, render_plan_markdown, render_report_markdown

EVIL = "<img src=x onerror=alert(1)> @everyone | approved | [x](javascript:1)"

PLAN_KEYS = ["schema_version", "name", "manifest", "manifest_sha256", "backend", "loads_model", "provenance", "plays", "summary", "warnings"]
PLAY_KEYS = ["number", "name", "title", "status", "trigger", "why", "condition", "owners", "cache_key"]


def test_manifest_text_renders_inert_everywhere(repo):
    repo.edit("description: Demo encoder", f"description: '{EVIL}'")
    repo.edit("path: data/train.tsv", "path: 'data/train.tsv'")
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    lock = read_lock(repo.lock).data()
    lock["next_step"] = EVIL  # any manifest-derived or free text in the lock goes through md()
    parser = MarkdownIt("commonmark", {"html": True}).enable("table")
    for text in (render_report_markdown(lock, root=repo.root), render_comment_markdown(lock, api.plan(repo.manifest, repo.root), root=repo.root),
                 render_plan_markdown(api.plan(repo.manifest, repo.root))):
        assert "<img" not in text and "\u200b" not in text
        flat = [c for t in parser.parse(text) for c in [t, *(t.children or [])]]
        assert not [t for t in flat if t.type in ("link_open", "image") and "javascript" in str(t.attrs)]
        assert not [t for t in flat if t.type == "html_inline"]
        assert not any("@everyone" in t.content for t in flat if t.type == "text"), "a live mention"
    assert "&lt;img" in render_report_markdown(lock)


def test_report_shows_the_trade_off(repo):
    api.run(repo.manifest, runner=FakeRunner(Script(ptq=(0.83, 0.58)), root=repo.root), root=repo.root)
    text = (repo.root / "reports" / "demo" / "report.md").read_text()
    for needle in ("| 0.8500 | 0.8480 | −0.0020 (−0.2%) | ≥ 0.8400 ✅ |", "hardest 10%", "2 kept at fp32",
                   "](tradeoff.png)", "](mixed_precision.png)", "](sensitivity.png)",
                   "| 6 | qat | skipped | the gate passed after mixed precision |", "Full evaluations spent: 4"):
        assert needle in text, needle


def test_plots_are_byte_identical_when_re_rendered(repo):
    api.run(repo.manifest, runner=FakeRunner(Script(ptq=(0.83, 0.58)), root=repo.root), root=repo.root)
    folder = repo.root / "reports" / "demo"
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert first["mixed_precision.png"].startswith(b"\x89PNG") and b"Matplotlib" not in first["sensitivity.png"]
    assert first["tradeoff.png"].startswith(b"\x89PNG")
    shutil.rmtree(folder)
    assert main(["report", str(repo.manifest), "--root", str(repo.root)]) == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first


def test_refused_lock_renders_its_next_step(repo):
    api.run(repo.manifest, runner=FakeRunner(Script(envelope="fail"), root=repo.root), root=repo.root)
    text = render_report_markdown(read_lock(repo.lock).data())
    assert "**❌ Refused: nothing ships**" in text and "envelope said fail" in text


def test_plan_json_is_stable(repo, capsys):
    assert main(["plan", str(repo.manifest), "--root", str(repo.root), "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert list(plan) == PLAN_KEYS
    assert [list(p) for p in plan["plays"]] == [PLAY_KEYS] * 8
    assert [p["name"] for p in plan["plays"]] == ["baseline", "envelope", "ptq", "gate", "mixed_precision", "qat", "lock", "monitor"]
    assert plan["plays"][4]["condition"] == "only if the gate says close"
    assert plan["plays"][0]["owners"] == {"ml_engineer": ["@ml-eng"]}
    assert main(["plan", str(repo.manifest), "--root", str(repo.root), "--format", "markdown"]) == 0
    assert "| 1 | baseline | run |" in capsys.readouterr().out


def test_plain_ptq_pass_still_draws_the_trade_off(repo):
    """Most models pass with plain PTQ: the report still has a picture, and no mixed-precision plots."""
    api.run(repo.manifest, runner=FakeRunner(Script(), root=repo.root), root=repo.root)
    folder = repo.root / "reports" / "demo"
    assert sorted(p.name for p in folder.iterdir()) == ["report.md", "tradeoff.png"]
    assert "](tradeoff.png)" in (folder / "report.md").read_text()
