"""The run journal: each finished play's full result, keyed by its cache key, written atomically.

``<root>/.quantgate/journal/<name>/<play>-<cachekey>.json`` (git-ignored). A run killed at any point
leaves only whole entries (temp file + ``os.replace``), so the rerun resumes after the last finished
play. The journal holds what the lock leaves out (per-example scores a later play needs); it is a
cache, never the record: deleting it costs reruns, not correctness.

``run_guard`` is the per-manifest ``fcntl`` lock that keeps two runs from interleaving.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from compiler.errors import Conflict
from compiler.playbook.lockfile import write_if_changed

JOURNAL_VERSION = 1


def state_dir(root: Path) -> Path:
    return Path(root) / ".quantgate"


class Journal:
    def __init__(self, root: Path, name: str):
        self.folder = state_dir(root) / "journal" / name

    def _path(self, play: str, key: str) -> Path:
        return self.folder / f"{play}-{key}.json"

    def get(self, play: str, key: str) -> dict | None:
        """The journaled result, or None (absent, or unreadable: a torn or foreign file is ignored
        and the play reruns, which is always safe)."""
        try:
            entry = json.loads(self._path(play, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("version") != JOURNAL_VERSION or entry.get("key") != key:
            return None
        return entry.get("result")

    def put(self, play: str, key: str, result: dict) -> None:
        entry = {"version": JOURNAL_VERSION, "play": play, "key": key, "result": result}
        # Insertion order kept (not sorted): a result read back must write the same lock as when
        # it was fresh, and the lock keeps the order the runner's dataclasses give.
        write_if_changed(self._path(play, key), json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n")


@contextmanager
def run_guard(root: Path, name: str, wait_s: float = 5.0, poll_s: float = 0.1) -> Iterator[None]:
    """Hold the exclusive run lock of manifest ``name``; wait up to ``wait_s`` then raise ``Conflict``.

    ``flock`` is released by the kernel when the process dies (kill -9 included), so a crashed run
    never leaves a stale lock behind."""
    import fcntl

    path = state_dir(root) / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Conflict(
                        f"another `quantgate run` holds {path} for manifest {name!r}; "
                        f"waited {wait_s:g} s. Let it finish, then run again."
                    ) from None
                time.sleep(poll_s)
        yield
    finally:
        handle.close()  # closing releases the flock
