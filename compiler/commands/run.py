"""``quantgate run MANIFEST``: execute the plan through the local runner, write the lock and report.

Exit 0 locked, 1 the gate or the envelope said no, 2 invalid input, 3 a runner failed, 4 another run
of the same manifest holds the run lock. Progress: a rich progress bar per long play on a terminal,
plain lines otherwise (CI logs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compiler.playbook.execute import Events

HELP = "run the plan: baseline, envelope, ptq, gate, ... and write the lock"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from MANIFEST)")
    parser.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for another run of the same manifest before refusing (exit 4)")


class PlainEvents(Events):
    """One line per event and a line per ~10 % of progress: readable in CI logs."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def play(self, name: str, status: str, why: str) -> None:
        verb = {"run": "running", "cached": "cached ", "skipped": "skipped"}.get(status, status)
        print(f"[{name}] {verb}: {why}", file=self.stream, flush=True)

    def progress(self, name: str):
        last = [-1]

        def report(done: int, total: int, what: str) -> None:
            if total <= 0:
                return
            step = int(10 * done / total)
            if step != last[0]:
                last[0] = step
                print(f"[{name}] {what} {done}/{total}", file=self.stream, flush=True)

        return report

    def finished(self, name: str, summary: str) -> None:
        print(f"[{name}] done: {summary}", file=self.stream, flush=True)


class RichEvents(PlainEvents):
    """A rich progress bar per long play on a terminal."""

    def __init__(self):
        super().__init__()
        from rich.console import Console

        self.console = Console(stderr=True)

    def play(self, name: str, status: str, why: str) -> None:
        style = {"run": "bold", "cached": "green", "skipped": "dim"}.get(status, "")
        self.console.print(f"[{style}]{name}[/{style}] {status}: {why}", markup=True, highlight=False)

    def progress(self, name: str):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn(f"{name}"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                       console=self.console, transient=True)
        task = [None]

        def report(done: int, total: int, what: str) -> None:
            if task[0] is None:
                bar.start()
                task[0] = bar.add_task(what, total=total or None)
            bar.update(task[0], completed=done, total=total or None, description=f"{what} {done}/{total}")
            if total and done >= total:
                bar.stop()
                task[0] = None

        return report

    def finished(self, name: str, summary: str) -> None:
        self.console.print(f"{name} done: {summary}", markup=False, highlight=False)


def run(args: argparse.Namespace) -> int:
    from compiler import api

    events = RichEvents() if sys.stderr.isatty() else PlainEvents()
    result = api.run(args.manifest, events=events, root=args.root, wait_s=args.wait)
    lock = result.lock
    changed = "written" if result.lock_written else "unchanged"
    if lock.get("verdict") == "locked":
        final = lock["final"]
        q = lock["deltas"]["quality"]
        print(f"locked: {final['candidate']} ({final['weights']}, {final['backend']}), "
              f"{lock['deltas']['metric']} {q['overall']['candidate']:.4f} vs {q['overall']['baseline']:.4f}; "
              f"lock {changed}: {result.lock_path}")
        return 0
    print(f"not locked: {lock.get('next_step')}\nlock {changed}: {result.lock_path}")
    return 1
