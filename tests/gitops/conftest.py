"""GitOps test parts: a loopback GitHub (github_server.FakeGitHub) and real git repositories with a
real bare remote, under tmp_path. Git runs with an isolated config so the machine's settings
(signing, hooks, default branch) cannot change what the tests see."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .git_isolation import isolate_git
from .github_server import FakeGitHub

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_MANIFEST = REPO_ROOT / "manifests" / "minilm-stsb.yaml"


def git(cwd: Path, *args: str) -> str:
    """Run git (the tests' own plumbing; the code under test uses gitpython)."""
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory, monkeypatch):
    isolate_git(tmp_path_factory.mktemp("githome"), monkeypatch)


@pytest.fixture
def github(httpserver) -> FakeGitHub:
    return FakeGitHub(httpserver)


def demo_manifest_text(**replace: str) -> str:
    text = DEMO_MANIFEST.read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


class Remote:
    """A bare remote plus a working clone (``work``) on branch ``main``."""

    def __init__(self, base: Path):
        self.bare = base / "remote.git"
        self.work = base / "work"
        git(base, "init", "--bare", "-b", "main", str(self.bare))
        git(base, "clone", "-q", str(self.bare), str(self.work))

    def clone(self, name: str) -> Path:
        path = self.bare.parent / name
        git(self.bare.parent, "clone", "-q", str(self.bare), str(path))
        return path

    def write(self, rel: str, text: str, repo: Path | None = None) -> Path:
        path = (repo or self.work) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def commit(self, message: str, repo: Path | None = None) -> str:
        repo = repo or self.work
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message)
        return git(repo, "rev-parse", "HEAD")

    def log(self, ref: str = "main") -> list[str]:
        return git(self.bare, "log", "--format=%H %an %s", ref).splitlines()


@pytest.fixture
def remote(tmp_path) -> Remote:
    return Remote(tmp_path)


@pytest.fixture
def demo_repo(remote: Remote) -> Remote:
    """The remote with the demo manifest and small stand-ins for its data and model directory,
    committed on main and pushed; the clone is on branch ``quantize``."""
    remote.write("manifests/minilm-stsb.yaml", demo_manifest_text())
    # Enough rows for what the demo manifest asks (validate checks it: 256 calibration samples).
    remote.write("data/stsb/sts-test.tsv", "".join(f"a\tb\tc\td\t{i % 5}.0\tone {i}\ttwo {i}\n" for i in range(300)))
    remote.write("data/stsb/sts-train.tsv", "".join(f"a\tb\tc\td\t{i % 5}.0\tthree {i}\tfour {i}\n" for i in range(300)))
    remote.write("models/all-MiniLM-L6-v2/config.json", "{}\n")
    remote.write("README.md", "demo\n")
    remote.commit("initial")
    git(remote.work, "push", "-q", "origin", "main")
    git(remote.work, "checkout", "-q", "-b", "quantize")
    return remote


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)


MINILM_DIR = REPO_ROOT / "models" / "all-MiniLM-L6-v2"
#: The demo manifest made small and decisive for tests: 64 evaluation pairs, 32 calibration samples,
#: batch 8 x 64 tokens, and a 96 MiB device on which full precision does not fit but int8 does, so
#: the envelope asks for quantization and the gate decides (no latency target: the shared test
#: machine's timings would make the outcome flaky).
SMALL = {
    "    columns: {score: 4, text_a: 5, text_b: 6}\n  metric": "    columns: {score: 4, text_a: 5, text_b: 6}\n    limit: 64\n  metric",
    "    samples: 256": "    samples: 32",
    "  memory_per_device: 1GiB": "  memory_per_device: 96MiB",
    "  sequence_length: 128\n": "  sequence_length: 64\n",
    "  latency_p95_ms: 120\n": "",
}


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link a folder (the 88 MB model) where the filesystem allows; copy otherwise."""
    import os

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, dirs_exist_ok=True)


@pytest.fixture
def workspace(remote: Remote) -> Remote:
    """A user repository as quantgate expects it: the small demo manifest, the real STS-B data
    committed, the real MiniLM in models/ (git-ignored, like this repository's), pushed to main."""
    if not (MINILM_DIR / "model.safetensors").is_file():
        pytest.fail(f"{MINILM_DIR} is missing: run scripts/setup first")
    remote.write("manifests/minilm-stsb.yaml", demo_manifest_text(**SMALL))
    remote.write(".gitignore", "/models/\n/artifacts/\n.quantgate/\n*.journal/\n")
    (remote.work / "data" / "stsb").mkdir(parents=True)
    for name in ("sts-test.tsv", "sts-train.tsv"):
        shutil.copy2(REPO_ROOT / "data" / "stsb" / name, remote.work / "data" / "stsb" / name)
    _link_tree(MINILM_DIR, remote.work / "models" / "all-MiniLM-L6-v2")
    remote.commit("quantgate: the demo model")
    git(remote.work, "push", "-q", "origin", "main")
    return remote
