"""kill -9 at any play, then rerun: resumes after the last finished play, same lock byte for byte.
Real subprocesses, real signals (the runner is the fake one: the claim is about the journal)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENTRY = Path(__file__).with_name("fake_run.py")


def start(repo, script: dict, wait: float = 5.0) -> subprocess.Popen:
    path = repo.root / "script.json"
    path.write_text(json.dumps(script))
    return subprocess.Popen([sys.executable, str(ENTRY), str(repo.manifest), str(path), str(wait)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo.root)


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 60) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}; got {seen}")


CLOSE = {"ptq": [0.83, 0.58]}  # goes through mixed precision: five plays to resume across


@pytest.fixture
def reference(tmp_path_factory, repo):
    """The lock of an uninterrupted run of the same manifest in another repository."""
    import shutil

    other = tmp_path_factory.mktemp("reference")
    shutil.copytree(repo.root, other, dirs_exist_ok=True)
    from playbook_support import Repo

    ref = Repo(other)
    proc = start(ref, CLOSE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return ref.lock.read_bytes()


@pytest.mark.parametrize("killed_in,finished_before", [
    ("baseline", []),
    ("mixed_precision", ["baseline", "envelope", "ptq"]),
])
def test_kill_9_mid_play_then_resume_gives_the_same_lock(repo, reference, killed_in, finished_before):
    proc = start(repo, {**CLOSE, "sleep": {killed_in: 30}})
    wait_for_line(proc, f"[{killed_in}] {killed_in} 1/10")  # inside the play, not between plays
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not repo.lock.exists()
    journal = repo.root / ".quantgate" / "journal" / "demo"
    done = sorted(p.name.split("-")[0] for p in journal.glob("*.json")) if journal.exists() else []
    assert done == sorted(finished_before)
    assert not [p for p in repo.root.rglob("*.tmp")]  # no torn temp files left as data

    proc = start(repo, CLOSE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    for play in finished_before:
        assert f"[{play}] cached" in out
    ran = out.split("calls: ")[1].strip().split(",")
    assert ran[0] == killed_in and not set(ran) & set(finished_before)
    assert repo.lock.read_bytes() == reference


def test_a_second_concurrent_run_waits_then_refuses_with_exit_4(repo):
    first = start(repo, {"sleep": {"baseline": 30}})
    wait_for_line(first, "[baseline] baseline 1/10")
    try:
        second = start(repo, {}, wait=0.5)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 4
        assert "another `quantgate run`" in err
    finally:
        first.kill()
        first.wait(timeout=30)
    assert not repo.lock.exists()
