"""Helpers for the manifest tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

from compiler.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "manifests" / "minilm-stsb.yaml"
STS_ROW = "main-captions\tMSRvid\t2012test\t{n:04d}\t{s:.3f}\tA man is playing a flute.\tA man plays a flute {n}.\n"
ROWS = 300
STS_DATA = "".join(STS_ROW.format(n=n, s=n % 5) for n in range(ROWS))


def make_repo(root: Path) -> Path:
    """A quantgate repository at ``root`` in which the demo manifest validates unchanged (its data
    files hold ``ROWS`` pairs: enough for the demo's 256 calibration samples)."""
    (root / "manifests").mkdir()
    (root / "data" / "stsb").mkdir(parents=True)
    for name in ("sts-test.tsv", "sts-train.tsv"):
        (root / "data" / "stsb" / name).write_text(STS_DATA)
    (root / "models" / "all-MiniLM-L6-v2").mkdir(parents=True)
    return root


def write(repo: Path, text: str | bytes, name: str = "m.yaml") -> Path:
    path = repo / "manifests" / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def validate(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``quantgate validate ARGS`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err
