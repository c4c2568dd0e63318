"""``quantgate run [MANIFEST...] [--changed BASE] [--force [PLAY]]``: execute each plan through the
local runner, write the lock and report. Default: every manifest under manifests/.

Exit 0 locked, 1 the gate or the envelope said no, 2 invalid input, 3 a runner failed, 4 another run
of the same manifest holds the run lock (several manifests: the highest code).

Progress: a rich progress bar per long play on a terminal; otherwise plain lines for CI logs: each play
that runs prints its start, ``done in <elapsed>`` (or ``failed after``), progress at every tenth and at
least every 15 s while it runs (a heartbeat when the runner is silent), and under GitHub Actions each
play is a collapsible ``::group::``. Known library noise (torch's ``_pytree`` deprecation warnings,
torchao's optional C++ kernels that did not load) is filtered before the model stack is imported;
``-v`` shows it. ``--force [PLAY]`` re-runs PLAY (default: baseline) and every play after it even
when a result for its cache key is recorded.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from compiler.playbook.execute import Events
from compiler.vocabulary import Play
from runners.noise import quiet_model_stack

HELP = "run the plan: baseline, envelope, ptq, gate, ... and write the lock"
HEARTBEAT_S = 15.0
FORCEABLE = (Play.BASELINE, Play.ENVELOPE, Play.PTQ, Play.MIXED_PRECISION, Play.QAT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="manifests to run (default: every manifest under manifests/)")
    parser.add_argument("--changed", metavar="BASE", default=None,
                        help="the manifests the change BASE...HEAD touches (as `quantgate changed` lists them)")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from MANIFEST)")
    parser.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for another run of the same manifest before refusing (exit 4)")
    parser.add_argument("--force", nargs="?", const=Play.BASELINE.value, default=None, metavar="PLAY",
                        choices=[p.value for p in FORCEABLE],
                        help="re-run PLAY (default: baseline) and every play after it even if cached")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="the summary: text or json")


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m{secs:02d}s"


class PlainEvents(Events):
    """Plain lines for logs: start, progress (every tenth, and at least every ``interval`` seconds
    while a play runs, a heartbeat when the runner reports nothing), done with the elapsed time.
    ``github``: each play that runs is a ``::group::`` (default: ``GITHUB_ACTIONS=true``)."""

    def __init__(self, stream=None, interval: float = HEARTBEAT_S, github: bool | None = None, clock=time.monotonic):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.github = os.environ.get("GITHUB_ACTIONS") == "true" if github is None else github
        self.clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}  # play -> start
        self._last_print = 0.0
        self._last_what = ""
        self._stop: threading.Event | None = None

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)
            self._last_print = self.clock()

    def play(self, name: str, status: str, why: str) -> None:
        verb = {"run": "running", "cached": "cached ", "skipped": "skipped"}.get(status, status)
        if status == "run":
            if self.github:
                self._print(f"::group::{name}")
            self._running[name] = self.clock()
            self._last_what = ""
            self._start_heartbeat(name)
        self._print(f"[{name}] {verb}: {why}")

    def progress(self, name: str):
        last = [-1]

        def report(done: int, total: int, what: str) -> None:
            now = self.clock()
            self._last_what = f"{what} {done}/{total}" if total > 0 else f"{what} {done}"
            due = now - self._last_print >= self.interval
            if total > 0:
                step = int(10 * done / total)
                if step != last[0] or due:
                    last[0] = step
                    self._print(f"[{name}] {what} {done}/{total}")
            elif last[0] == -1 or due:
                last[0] = 0
                self._print(f"[{name}] {what} {done} (total unknown)")

        return report

    def ended(self, name: str, seconds: float, ok: bool) -> None:
        self._stop_heartbeat()
        self._running.pop(name, None)
        self._print(f"[{name}] {'done' if ok else 'failed'} {'in' if ok else 'after'} {_elapsed(seconds)}")
        if self.github:
            self._print("::endgroup::")

    def finished(self, name: str, summary: str) -> None:
        self._print(f"[{name}] result: {summary}")

    # a play's heartbeat: the log never goes silent for longer than `interval`
    def _start_heartbeat(self, name: str) -> None:
        self._stop_heartbeat()
        if self.interval <= 0:
            return
        stop = threading.Event()
        self._stop = stop

        def beat() -> None:
            while not stop.wait(min(self.interval, 1.0)):
                if self.clock() - self._last_print >= self.interval and name in self._running:
                    since = _elapsed(self.clock() - self._running[name])
                    last = f"; last: {self._last_what}" if self._last_what else ""
                    self._print(f"[{name}] still running ({since} elapsed{last})")

        threading.Thread(target=beat, name=f"quantgate-heartbeat-{name}", daemon=True).start()

    def _stop_heartbeat(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None


class QuietEvents(Events):
    """-q: nothing but failures."""

    def ended(self, name: str, seconds: float, ok: bool) -> None:
        if not ok:
            print(f"[{name}] failed after {_elapsed(seconds)}", file=sys.stderr, flush=True)


class RichEvents(PlainEvents):
    """A rich progress bar per long play on a terminal."""

    def __init__(self):
        super().__init__(interval=0, github=False)
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
        self._bar = bar

        def report(done: int, total: int, what: str) -> None:
            if task[0] is None:
                bar.start()
                task[0] = bar.add_task(what, total=total or None)
            bar.update(task[0], completed=done, total=total or None, description=f"{what} {done}/{total}" if total else f"{what} {done}")
            if total and done >= total:
                bar.stop()
                task[0] = None

        return report

    def ended(self, name: str, seconds: float, ok: bool) -> None:
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.stop()
            self._bar = None
        self.console.print(f"{name} {'done in' if ok else 'failed after'} {_elapsed(seconds)}", markup=False, highlight=False)

    def finished(self, name: str, summary: str) -> None:
        self.console.print(f"{name}: {summary}", markup=False, highlight=False)


# ------------------------------------------------------------------------------------------- run


def summary(result) -> dict:
    """The run's outcome as JSON data (``--format json``)."""
    lock = result.lock
    data = {
        "name": lock.get("name"),
        "verdict": lock.get("verdict"),
        "lock": result.lock_path,
        "lock_written": result.lock_written,
        "ran": list(getattr(result.outcome, "ran", [])),
        "seconds": {k: round(v, 3) for k, v in getattr(result.outcome, "seconds", {}).items()},
        "report": result.report_written,
        "next_step": lock.get("next_step"),
    }
    if lock.get("verdict") == "locked":
        final, q = lock["final"], lock["deltas"]["quality"]
        data["final"] = {"candidate": final["candidate"], "weights": final["weights"], "backend": final["backend"],
                         "metric": lock["deltas"]["metric"], "candidate_value": q["overall"]["candidate"],
                         "baseline_value": q["overall"]["baseline"]}
    return data


def _text(result) -> str:
    lock = result.lock
    changed = "written" if result.lock_written else "unchanged"
    if lock.get("verdict") == "locked":
        final = lock["final"]
        q = lock["deltas"]["quality"]
        return (f"locked: {final['candidate']} ({final['weights']}, {final['backend']}), "
                f"{lock['deltas']['metric']} {q['overall']['candidate']:.4f} vs {q['overall']['baseline']:.4f}; "
                f"lock {changed}: {result.lock_path}")
    return f"not locked: {lock.get('next_step')}\nlock {changed}: {result.lock_path}"


def run(args: argparse.Namespace) -> int:
    from compiler import api
    from compiler.errors import QuantgateError

    out = args.out
    quiet_model_stack(out.verbose)  # runners.noise, before the model stack is imported
    paths = out.manifests(list(args.manifests), args.changed, args.root)
    paths = api.manifest_list(paths, args.root)
    if not paths:
        out.note("no manifests to run")
        return 0
    if out.quiet:
        events: Events = QuietEvents()
    else:
        events = RichEvents() if sys.stderr.isatty() and os.environ.get("GITHUB_ACTIONS") != "true" else PlainEvents()
    codes, summaries = [], []
    for path in paths:
        try:
            result = api.run(path, events=events, root=args.root, wait_s=args.wait, force=args.force)
        except QuantgateError as exc:
            if len(paths) == 1:
                raise
            out.error(f"{path}: {exc.render()}")
            codes.append(int(exc.exit_code))
            summaries.append({"manifest": path, "error": exc})
            continue
        locked = result.lock.get("verdict") == "locked"
        codes.append(0 if locked else 1)
        summaries.append({"manifest": path, **summary(result)})
        if args.format != "json":
            out.result(_text(result))
    if args.format == "json":
        out.json(summaries[0] if len(args.manifests) == 1 and not args.changed else summaries)
    return max(codes)
