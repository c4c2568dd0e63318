"""Play 7 beyond this machine, end to end through the CLI: run (scripted runner) -> push -> pull ->
verify --remote, against every store kind on loopback (the folder, file://, moto S3, a real OCI
registry). The attacks: a byte flipped in the store, a missing object with ``required: true``, a
local artifact changed after locking, a lock whose per-file hashes do not combine into its address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "playbook"))

from fake_runner import FakeRunner  # noqa: E402
from playbook_support import make_repo  # noqa: E402

from compiler import api  # noqa: E402
from compiler.cli import main  # noqa: E402
from compiler.files import artifact_sha256  # noqa: E402
from compiler.playbook.lockfile import dump_lock, read_lock  # noqa: E402


def locked_repo(backend, required: bool = False):
    repo = make_repo(backend.root)
    store = f"store: {backend.url!r}, " if backend.url else ""
    (backend.root / "quantgate.yaml").write_text(f"artifacts: {{{store}required: {str(required).lower()}}}\n")
    result = api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    assert result.lock["verdict"] == "locked"
    return repo


def test_push_records_where_then_pull_deploys_both_artifacts_verified(backend, capsys):
    repo = locked_repo(backend)
    before = read_lock(repo.lock)
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 0
    lock = read_lock(repo.lock)
    assert lock.results_sha256 == before.results_sha256  # pushing never changes the approved numbers
    assert lock.store.kind == backend.kind and lock.store.quantized.sha256 == lock.final.artifact.sha256
    assert backend.url is None or backend.url not in repo.lock.read_text()  # the lock holds addresses, never the URL
    assert lock.store.full_precision.files == {"config.json": lock.store.full_precision.files["config.json"]}

    again = repo.lock.read_bytes()
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 0  # idempotent: nothing uploaded, no byte changes
    assert "0 uploaded" in capsys.readouterr().out.splitlines()[-1] and repo.lock.read_bytes() == again

    dest = backend.root.parent / "deploy"
    assert main(["pull", str(repo.manifest), "--dest", str(dest), "--root", str(repo.root)]) == 0
    quantized = dest / "quantized"
    assert sorted(p.relative_to(quantized).as_posix() for p in quantized.rglob("*") if p.is_file()) == sorted(lock.final.artifact.files)
    for name in lock.final.artifact.files:
        assert (quantized / name).read_bytes() == (repo.root / lock.final.artifact.path / name).read_bytes()
    assert (dest / "full-precision" / "config.json").read_bytes() == (repo.root / "models" / "tiny" / "config.json").read_bytes()

    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--remote", "--deep"]) == 0


def test_a_flipped_byte_in_the_store_is_refused_and_leaves_nothing(backend, capsys):
    repo = locked_repo(backend)
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 0
    lock = read_lock(repo.lock)
    files = dict(lock.final.artifact.files)
    name = next(n for n in sorted(files) if n != "artifact.json")
    backend.tamper(lock.store.quantized.slug, lock.final.artifact.sha256, name, files)
    dest = backend.root.parent / "deploy"
    capsys.readouterr()
    assert main(["pull", str(repo.manifest), "--dest", str(dest), "--root", str(repo.root)]) == 1
    err = capsys.readouterr().err
    assert name in err and files[name] in err  # names the file and the expected hash
    assert not dest.exists() or list(dest.iterdir()) == []
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--remote", "--deep"]) == 1


def test_missing_from_the_store_fails_verify_remote_only_when_required(backend, capsys):
    repo = locked_repo(backend, required=True)
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 0
    lock = read_lock(repo.lock)
    files = dict(lock.final.artifact.files)
    name = next(n for n in sorted(files) if n != "artifact.json")
    backend.remove(lock.store.quantized.slug, lock.final.artifact.sha256, name, files)
    capsys.readouterr()
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--remote"]) == 1
    assert name in capsys.readouterr().err
    (backend.root / "quantgate.yaml").write_text((backend.root / "quantgate.yaml").read_text().replace("required: true", "required: false"))
    if backend.kind == "folder":
        return  # the default store is this machine's artifacts/ folder: the local artifact check fails too
    capsys.readouterr()
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--remote"]) == 0  # not required: a note
    assert "note: store: " in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["folder"], indirect=True)
def test_a_local_artifact_changed_after_locking_is_not_pushed(backend, capsys):
    repo = locked_repo(backend)
    lock = read_lock(repo.lock)
    name = next(n for n in sorted(lock.final.artifact.files) if n != "artifact.json")
    target = repo.root / lock.final.artifact.path / name
    target.chmod(0o644)
    target.write_bytes(target.read_bytes() + b"!")
    backend.url = "file://" + str(backend.root.parent / "elsewhere")
    (backend.root / "quantgate.yaml").write_text(f"artifacts: {{store: {backend.url!r}}}\n")
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 1
    assert name in capsys.readouterr().err
    assert not (backend.root.parent / "elsewhere").exists() or not any((backend.root.parent / "elsewhere").rglob(name))


@pytest.mark.parametrize("backend", ["folder"], indirect=True)
def test_verify_checks_offline_that_file_hashes_combine_into_the_address(backend, capsys):
    repo = locked_repo(backend)
    data = read_lock(repo.lock).data()
    files = data["final"]["artifact"]["files"]
    name = next(n for n in sorted(files) if n != "artifact.json")
    files[name] = "0" * 64  # a hand edit; dump_lock recomputes results_sha256, so only the combine check catches it
    assert artifact_sha256(files) != data["final"]["artifact"]["sha256"]
    repo.lock.write_text(dump_lock(data))
    capsys.readouterr()
    assert main(["verify", str(repo.manifest), "--root", str(repo.root)]) == 1
    assert "combine into sha256" in capsys.readouterr().err


def test_pull_killed_mid_stream_leaves_no_partial_folder(backend, tmp_path):
    repo = locked_repo(backend)
    # A large file makes the pull take long enough to be killed mid-stream.
    model = repo.root / "models" / "tiny"
    (model / "weights.bin").write_bytes(bytes(range(256)) * (40 << 12))
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 0
    dest = tmp_path / "deploy"
    env = {**__import__("os").environ, **backend.env}
    child = subprocess.Popen([sys.executable, "-m", "compiler.cli", "pull", str(repo.manifest), "--dest", str(dest), "--root", str(repo.root)],
                             cwd=Path(__file__).resolve().parents[2], env=env)
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None:
        if any(p.name.startswith(".") for p in dest.glob(".*")) or (dest.exists() and any(dest.glob(".*"))):
            break
        time.sleep(0.005)
    child.kill()
    child.wait()
    finals = [p for p in (dest.iterdir() if dest.exists() else []) if not p.name.startswith(".")]
    for folder in finals:  # whatever is at a final name is complete and verified, never partial
        assert folder.name in ("quantized", "full-precision")
    assert main(["pull", str(repo.manifest), "--dest", str(dest), "--root", str(repo.root)]) == 0
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # the next pull cleaned up
