"""One suite over every store (folder, file://, S3 on moto, an OCI registry), on real loopback servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compiler.errors import ExitCode
from compiler.files import listing
from compiler.store import (
    INDEX_FILE,
    ArtifactMissing,
    StoreConflict,
    StoredAt,
    StoreMismatch,
    StoreUnreachable,
    StoreURLInvalid,
    check,
    open_store,
    pull,
    push,
)

REPO = Path(__file__).resolve().parents[2]
SLUG = "minilm-test"


def _no_leftovers(dest: Path) -> None:
    assert not dest.exists()
    if dest.parent.exists():
        assert [p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")] == []


def test_push_then_pull_gives_the_same_bytes(backend, artifact, tmp_path):
    src, sha, files, sizes = artifact()
    store = backend.store()
    pushed = push(store, src, SLUG, sha, files)
    assert pushed.uploaded[-1] == "artifact.json"  # the completion marker goes last
    assert set(pushed.uploaded) == set(files) and pushed.skipped == ()
    assert pushed.bytes_uploaded == sum(sizes.values())
    assert pushed.stored_at.kind == backend.kind
    if backend.kind == "oci":
        assert pushed.stored_at.address.startswith("sha256:") and len(pushed.stored_at.address) == 71
    else:
        assert pushed.stored_at.address == f"{SLUG}/{sha}/"
    assert backend.url is None or backend.url not in pushed.stored_at.address
    assert check(store, SLUG, sha, files, sizes) == []
    assert check(store, SLUG, sha, files, sizes, deep=True) == []
    dest = tmp_path / "out" / SLUG / sha
    assert pull(store, SLUG, sha, files, dest) == dest.absolute()
    assert listing(dest) == files
    for name in files:
        assert (dest / name).read_bytes() == (src / name).read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == [sha]
    # A second pull finds the verified folder and leaves it.
    assert pull(store, SLUG, sha, files, dest) == dest.absolute()
    if backend.kind == "oci":  # pinned to the recorded manifest digest
        other = tmp_path / "pinned"
        pull(store, SLUG, sha, files, other, at=pushed.stored_at)
        assert listing(other) == files
        assert check(store, SLUG, sha, files, sizes, at=StoredAt("oci", "sha256:" + "0" * 64))


def test_repush_skips_everything(backend, artifact):
    src, sha, files, _ = artifact()
    store = backend.store()
    first = push(store, src, SLUG, sha, files)
    again = push(backend.store(), src, SLUG, sha, files)
    assert again.uploaded == () and set(again.skipped) == set(files) and again.bytes_uploaded == 0
    assert again.stored_at == first.stored_at


def test_conflicting_object_is_refused_and_not_overwritten(backend, artifact):
    src, sha, files, sizes = artifact()
    store = backend.store()
    other = os.urandom(sizes["model.bin"])  # same name and size, other bytes
    backend.plant(SLUG, sha, "model.bin", other, files)
    with pytest.raises(StoreConflict) as caught:
        push(store, src, SLUG, sha, files)
    assert caught.value.exit_code == ExitCode.CONFLICT
    assert "model.bin" in str(caught.value) and files["model.bin"] in str(caught.value)
    assert "\n" not in caught.value.render()
    if backend.kind == "oci":
        assert store.get_manifest(store._repo(SLUG), sha) is not None
        raw = store.get_manifest(store._repo(SLUG), sha)
        import hashlib

        assert "sha256:" + hashlib.sha256(raw).hexdigest() == backend.planted
    else:
        assert backend.read(SLUG, sha, "model.bin", files) == other
        assert check(store, SLUG, sha, files, sizes)  # never completed


def test_tampered_object_is_refused_on_pull_and_leaves_nothing(backend, artifact, tmp_path):
    src, sha, files, _ = artifact()
    store = backend.store()
    push(store, src, SLUG, sha, files)
    backend.tamper(SLUG, sha, "model.bin", files)
    dest = tmp_path / "out" / SLUG / sha
    with pytest.raises(StoreMismatch) as caught:
        pull(store, SLUG, sha, files, dest)
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert "model.bin" in message and files["model.bin"] in message
    bad = [w for w in message.replace(",", " ").split() if len(w) == 64 and w != files["model.bin"] and w != sha]
    assert bad, message  # the hash it got, next to the expected one
    _no_leftovers(dest)


def test_deep_check_catches_a_flipped_byte_a_shallow_check_misses(backend, artifact):
    src, sha, files, sizes = artifact()
    store = backend.store()
    push(store, src, SLUG, sha, files)
    backend.tamper(SLUG, sha, "model.bin", files)
    assert check(store, SLUG, sha, files, sizes) == []  # same size, the store's own record unchanged
    problems = check(store, SLUG, sha, files, sizes, deep=True)
    assert len(problems) == 1 and "model.bin" in problems[0] and files["model.bin"] in problems[0]


def test_missing_object_is_reported(backend, artifact, tmp_path):
    src, sha, files, sizes = artifact()
    store = backend.store()
    assert check(store, SLUG, sha, files, sizes) == [f"{SLUG}/{sha}: not in {store}"]
    push(store, src, SLUG, sha, files)
    backend.remove(SLUG, sha, "tokenizer/vocab.txt", files)
    problems = check(store, SLUG, sha, files, sizes)
    assert problems == [f"{SLUG}/{sha}/tokenizer/vocab.txt: missing in {store}"]
    dest = tmp_path / "out"
    with pytest.raises(ArtifactMissing, match="tokenizer/vocab.txt"):
        pull(store, SLUG, sha, files, dest)
    _no_leftovers(dest)
    # A re-push repairs it: the missing object goes up again, nothing else.
    again = push(store, src, SLUG, sha, files)
    assert again.uploaded == ("tokenizer/vocab.txt",) or (backend.kind == "oci" and "tokenizer/vocab.txt" in again.uploaded)
    assert check(store, SLUG, sha, files, sizes, deep=True) == []


@pytest.mark.parametrize("backend", ["folder", "file", "s3"], indirect=True)  # a registry serves only its manifest
def test_extra_and_resized_objects_are_reported(backend, artifact):
    src, sha, files, sizes = artifact()
    store = backend.store()
    push(store, src, SLUG, sha, files)
    backend.write(SLUG, sha, "stray.bin", b"stray", files)
    backend.write(SLUG, sha, "config.json", b"{}", files)
    problems = check(store, SLUG, sha, files, sizes)
    assert any("stray.bin" in p and "not part of the artifact" in p for p in problems), problems
    assert any("config.json" in p and "2 bytes" in p for p in problems), problems


def test_local_file_mismatch_uploads_nothing(backend, artifact):
    src, sha, files, sizes = artifact()
    (src / "config.json").write_text('{"hidden": 9}', encoding="utf-8")
    store = backend.store()
    with pytest.raises(StoreMismatch) as caught:
        push(store, src, SLUG, sha, files)
    assert "config.json" in str(caught.value) and files["config.json"] in str(caught.value)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert check(store, SLUG, sha, files, sizes) == [f"{SLUG}/{sha}: not in {store}"]


def test_address_must_match_the_files(backend, artifact):
    src, sha, files, _ = artifact()
    store = backend.store()
    wrong = "f" * 64
    with pytest.raises(StoreMismatch, match=sha):
        push(store, src, SLUG, wrong, files)
    with pytest.raises(StoreMismatch):
        pull(store, SLUG, wrong, files, src.parent / "x")
    with pytest.raises(StoreURLInvalid):
        push(store, src, SLUG, sha, {"../escape": files["model.bin"]})


def test_directory_without_artifact_json_gets_the_store_index(backend, artifact, tmp_path):
    src, sha, files, sizes = artifact(record=False, big=1 << 16)
    store = backend.store()
    pushed = push(store, src, "fp-model", sha, files)
    assert set(pushed.uploaded) == set(files)
    if backend.kind != "oci":
        index = json.loads(backend.read("fp-model", sha, INDEX_FILE, files))
        assert index["files"] == files and index["sizes"] == sizes and index["sha256"] == sha
    assert check(store, "fp-model", sha, files, sizes) == []
    again = push(store, src, "fp-model", sha, files)
    assert again.uploaded == () and set(again.skipped) == set(files)
    dest = pull(store, "fp-model", sha, files, tmp_path / "fp")
    assert listing(dest) == files and not (dest / INDEX_FILE).exists()
    if backend.kind != "oci":  # without the index the upload is incomplete
        backend.remove("fp-model", sha, INDEX_FILE, files)
        assert any("incomplete" in p for p in check(store, "fp-model", sha, files, sizes))
        with pytest.raises(ArtifactMissing, match="incomplete"):
            pull(store, "fp-model", sha, files, tmp_path / "fp2")


_PULL_SLOWLY = """
import contextlib, json, sys, time
from pathlib import Path
from compiler.store import open_store, pull
import compiler.store.transfer as transfer
args = json.loads(sys.argv[1])
transfer.CHUNK = 1 << 16
store = open_store(args["url"], Path(args["root"]))
opened = store.open_object

@contextlib.contextmanager
def slow(*a, **k):
    with opened(*a, **k) as stream:
        class Slow:
            def read(self, n):
                time.sleep(0.01)
                return stream.read(n)
        yield Slow()

store.open_object = slow
pull(store, args["slug"], args["sha"], args["files"], Path(args["dest"]))
"""


def test_killed_pull_leaves_no_partial_folder(backend, artifact, tmp_path):
    src, sha, files, _ = artifact()
    store = backend.store()
    push(store, src, SLUG, sha, files)
    dest = tmp_path / "out" / SLUG / sha
    env = dict(os.environ, **backend.env, PYTHONPATH=str(REPO))
    args = {"url": backend.url, "root": str(backend.root), "slug": SLUG, "sha": sha, "files": files, "dest": str(dest)}
    proc = subprocess.Popen([sys.executable, "-c", _PULL_SLOWLY, json.dumps(args)], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        partial = None
        while time.monotonic() < deadline and proc.poll() is None:
            temps = list(dest.parent.glob(f".{dest.name}.pull-*")) if dest.parent.exists() else []
            if temps and (temps[0] / "model.bin").is_file() and (temps[0] / "model.bin").stat().st_size > 0:
                partial = temps[0]
                break
            time.sleep(0.01)
        assert partial is not None, "the pull never got going (or finished before it could be killed)"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()
    assert partial.exists() and partial.name.startswith(".")
    # The next pull removes the dead one's leftovers and completes.
    assert pull(backend.store(), SLUG, sha, files, dest) == dest.absolute()
    assert listing(dest) == files
    assert [p.name for p in dest.parent.iterdir()] == [sha]


# -- URLs, reachability, auth (not per store) ----------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://example.com/x", "/abs/folder", "../outside", "s3://", "s3://b", "s3://bucket/a/../b", "oci://registry",
    "oci://Registry.io/UPPER", "oci://user:secret@ghcr.io/acme", "s3://bucket/x?endpoint_url=http://h", "file://host/x",
    "oci://ghcr.io:notaport/acme", "gs://",
])
def test_malformed_urls_are_invalid_input(url, tmp_path):
    with pytest.raises(StoreURLInvalid) as caught:
        open_store(url, tmp_path)
    assert caught.value.exit_code == ExitCode.INVALID
    assert "secret" not in caught.value.render() and "\n" not in caught.value.render()


def test_default_and_relative_folders(tmp_path, artifact):
    src, sha, files, _ = artifact(big=1000)
    assert push(open_store(None, tmp_path), src, SLUG, sha, files).stored_at == StoredAt("folder", f"{SLUG}/{sha}/")
    assert listing(tmp_path / "artifacts" / SLUG / sha) == files  # today's layout
    push(open_store("stores/team", tmp_path), src, SLUG, sha, files)
    assert listing(tmp_path / "stores" / "team" / SLUG / sha) == files
    # Pushing the default store's own folder to it is a no-op.
    again = push(open_store("", tmp_path), tmp_path / "artifacts" / SLUG / sha, SLUG, sha, files)
    assert again.uploaded == ()


def test_unreachable_stores_are_runner_failures(tmp_path, artifact, moto_s3, monkeypatch):
    from servers import free_port

    src, sha, files, sizes = artifact(big=100)
    port = free_port()
    for url in (f"oci+http://127.0.0.1:{port}/acme", "s3://quantgate-test/x"):
        if url.startswith("s3"):
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
            monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        store = open_store(url, tmp_path)
        for call in (lambda s=store: push(s, src, SLUG, sha, files), lambda s=store: check(s, SLUG, sha, files, sizes)):
            with pytest.raises(StoreUnreachable) as caught:
                call()
            assert caught.value.exit_code == ExitCode.RUNNER
            assert "\n" not in caught.value.render() and "Traceback" not in caught.value.render()


def test_missing_bucket_is_a_clear_error(tmp_path, artifact, moto_s3):
    src, sha, files, _ = artifact(big=100)
    with pytest.raises(StoreUnreachable) as caught:
        push(open_store("s3://no-such-bucket/x", tmp_path), src, SLUG, sha, files)
    assert "no-such-bucket" in caught.value.render() and "\n" not in caught.value.render()


def test_oci_bearer_token_from_the_environment(httpserver, monkeypatch, tmp_path):
    """A ghcr-style challenge: the token service gets basic user:token, the registry the bearer."""
    import base64

    from werkzeug import Response

    monkeypatch.setenv("QUANTGATE_OCI_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("QUANTGATE_OCI_USERNAME", "robot")
    realm = httpserver.url_for("/token")
    seen = {}

    def token(request):
        seen["basic"] = request.headers.get("Authorization")
        seen["scope"] = request.args.get("scope")
        seen["service"] = request.args.get("service")
        return Response(json.dumps({"token": "bearer-xyz"}), content_type="application/json")

    def manifest(request):
        if request.headers.get("Authorization") != "Bearer bearer-xyz":
            return Response("", status=401, headers={
                "WWW-Authenticate": f'Bearer realm="{realm}",service="test-registry",scope="repository:acme/minilm-test:pull"'})
        return Response(json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN"}]}), status=404)

    httpserver.expect_request("/token").respond_with_handler(token)
    httpserver.expect_request(f"/v2/acme/{SLUG}/manifests/{'a' * 64}").respond_with_handler(manifest)
    store = open_store(f"oci+http://127.0.0.1:{httpserver.port}/acme", tmp_path)
    files = {"x": "b" * 64}
    from compiler.files import artifact_sha256

    sha = artifact_sha256(files)
    httpserver.expect_request(f"/v2/acme/{SLUG}/manifests/{sha}").respond_with_handler(manifest)
    httpserver.expect_request(f"/v2/acme/{SLUG}/blobs/sha256:{'b' * 64}").respond_with_handler(manifest)
    assert check(store, SLUG, sha, files, {"x": 1}) == [f"{SLUG}/{sha}: not in {store}"]
    assert seen["basic"] == "Basic " + base64.b64encode(b"robot:s3cr3t-token").decode()
    assert seen["scope"] == f"repository:acme/{SLUG}:pull" and seen["service"] == "test-registry"

    # A refused token: a one-line error that never shows the token.
    httpserver.clear()
    httpserver.expect_request("/token").respond_with_data("denied", status=401)
    httpserver.expect_request(f"/v2/acme/{SLUG}/manifests/{sha}").respond_with_handler(manifest)
    with pytest.raises(StoreUnreachable) as caught:
        check(open_store(f"oci+http://127.0.0.1:{httpserver.port}/acme", tmp_path), SLUG, sha, files, {"x": 1})
    assert "s3cr3t" not in caught.value.render() and "QUANTGATE_OCI_TOKEN" in caught.value.render()


def test_oci_credentials_never_go_over_plain_http_to_a_remote_host(monkeypatch, tmp_path):
    from compiler.store.oci import OciStore

    monkeypatch.setenv("QUANTGATE_OCI_TOKEN", "s3cr3t-token")
    store = open_store("oci+http://registry.example.com/acme", tmp_path)
    assert isinstance(store, OciStore)
    with pytest.raises(StoreUnreachable, match="plain HTTP"):
        store._credentials()
