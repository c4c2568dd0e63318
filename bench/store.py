"""How much does a store cost over a plain copy? Push and pull one artifact directory to each store on
loopback (the repository folder, ``file://``, S3 on a moto server, the CNCF distribution registry),
next to ``shutil.copytree`` of the same bytes, all in this run on this machine.

Usage: python bench/store.py [DIRECTORY] [--repeat 3] [--size-mb 22]
DIRECTORY: an artifact directory; default the newest under ``artifacts/``, else a generated set of
files (one large "weights" file and a few small ones, ``--size-mb`` in all). Prints the median wall
time of push, pull and copy per store and the ratio (push + pull) / copy (target: < 3x on loopback),
the floor that hashing sets on that ratio, and for S3 and OCI the time the plain client (boto3,
requests) takes to move the same bytes up and down without quantgate ("raw").
Needs ``docker-registry`` (Debian package; scripts/test installs it) and ``moto[server]``, ``s3fs``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "store"))

from servers import MotoS3, Registry  # noqa: E402

from compiler.files import artifact_sha256, file_sha256, listing  # noqa: E402
from compiler.store import open_store, pull, push  # noqa: E402


def newest_artifact() -> Path | None:
    candidates = [p for p in (ROOT / "artifacts").glob("*/*") if p.is_dir() and not p.name.startswith(".")]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def generate(folder: Path, size_mb: int) -> Path:
    folder.mkdir(parents=True)
    total = size_mb << 20
    small = {"config.json": 4 << 10, "tokenizer.json": 700 << 10, "vocab.txt": 230 << 10, "special_tokens_map.json": 1 << 10}
    for name, size in small.items():
        (folder / name).write_bytes(os.urandom(size))
    (folder / "model.safetensors").write_bytes(os.urandom(max(total - sum(small.values()), 1)))
    return folder


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def one_round(work: Path, repo: Path, label: str, url: str | None, i: int, source: Path, sha: str,
              files: dict[str, str]) -> tuple[float, float, float]:
    """(push, pull, copytree) seconds for one fresh store location and destination."""
    tag = f"{label.split()[0].strip(':/')}-{i}"
    os.sync()  # start each round without the previous rounds' dirty pages being written back under it
    root = repo / tag
    root.mkdir()
    store = open_store(url, root)
    pushed = timed(lambda: push(store, source, "bench", sha, files))
    dest = work / "pulled" / tag / sha
    pulled = timed(lambda: pull(store, "bench", sha, files, dest))
    copied = timed(lambda: shutil.copytree(source, work / "copies" / tag))
    assert listing(dest) == files
    return pushed, pulled, copied


def raw_round(kind: str, server, source: Path, files: dict[str, str], i: int) -> float:
    """The same bytes up and down with the plain client and no quantgate (no hashing, no checks):
    what the server and protocol cost by themselves."""
    import requests

    os.sync()
    start = time.perf_counter()
    if kind == "oci":
        base, repo = f"http://127.0.0.1:{server.port}", f"{server.namespace}/raw{i}/bench"
        for name, digest in files.items():
            location = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=60).headers["Location"]
            location = requests.compat.urljoin(base, location)
            sep = "&" if "?" in location else "?"
            requests.put(f"{location}{sep}digest=sha256:{digest}", data=(source / name).read_bytes(), timeout=60,
                         headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        for digest in files.values():
            requests.get(f"{base}/v2/{repo}/blobs/sha256:{digest}", timeout=60).content  # noqa: B018
    else:
        import boto3

        client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
        for name in files:
            client.put_object(Bucket=server.bucket, Key=f"raw{i}/{name}", Body=(source / name).read_bytes())
        for name in files:
            client.get_object(Bucket=server.bucket, Key=f"raw{i}/{name}")["Body"].read()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=22)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quantgate-bench-store-"))
    try:
        source = args.directory or newest_artifact() or generate(work / "generated" / "model", args.size_mb)
        source = source.resolve()
        files = listing(source)
        sha = artifact_sha256(files)
        total = sum((source / n).stat().st_size for n in files)
        print(f"artifact: {source} ({len(files)} files, {total / 2**20:.1f} MiB), repeat {args.repeat}, median wall times")
        repo = work / "repo"
        repo.mkdir()
        with Registry(work / "registry") as registry, MotoS3(work / "moto") as s3:
            os.environ.update(s3.env)
            stores = {
                "folder": lambda i: None,
                "file://": lambda i: f"file://{work}/file-store-{i}",
                "s3 (moto)": lambda i: f"s3://{s3.bucket}/run{i}",
                "oci (registry)": lambda i: f"{registry.url}/run{i}",
            }
            hashes = [timed(lambda: [file_sha256(source / n) for n in files]) for _ in range(args.repeat)]
            copies0 = [timed(lambda i=i: shutil.copytree(source, work / "copies0" / str(i))) for i in range(args.repeat)]
            h, c0 = statistics.median(hashes), statistics.median(copies0)
            print(f"one sha256 pass over the bytes: {h:.3f} s; copytree: {c0:.3f} s. push and pull each hash every byte once "
                  f"and move it once, so the floor is (2 hash + 2 copy) / copy = {(2 * h + 2 * c0) / c0:.1f}x")
            print(f"{'store':<16}{'push s':>9}{'pull s':>9}{'copy s':>9}{'(push+pull)/copy':>18}{'push MB/s':>11}{'pull MB/s':>11}"
                  f"{'raw up+down s':>15}{'(push+pull)/raw':>17}")
            for label, url_for in stores.items():
                runs = [one_round(work, repo, label, url_for(i), i, source, sha, files) for i in range(args.repeat)]
                p, q, c = (statistics.median(r[k] for r in runs) for k in range(3))
                mb = total / 2**20
                line = f"{label:<16}{p:>9.3f}{q:>9.3f}{c:>9.3f}{(p + q) / c:>17.1f}x{mb / p:>11.0f}{mb / q:>11.0f}"
                if label.startswith(("s3", "oci")):
                    kind, server = ("oci", registry) if label.startswith("oci") else ("s3", s3)
                    raw = statistics.median(raw_round(kind, server, source, files, i) for i in range(args.repeat))
                    line += f"{raw:>15.3f}{(p + q) / raw:>16.1f}x"
                print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
