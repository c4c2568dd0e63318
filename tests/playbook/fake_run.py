"""Test-only entry point: ``python tests/playbook/fake_run.py MANIFEST SCRIPT_JSON`` runs the real
``quantgate run`` pipeline (journal, run lock, lock file, report) with the fake runner, in its own
process, so a test can kill it with a real signal. Exit codes are the CLI's."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fake_runner import FakeRunner, Script  # noqa: E402

from compiler.commands.run import PlainEvents  # noqa: E402
from compiler.errors import QuantgateError  # noqa: E402


def main() -> int:
    from compiler import api

    manifest, script = Path(sys.argv[1]), Script.from_json(Path(sys.argv[2]).read_text())
    runner = FakeRunner(script, root=manifest.resolve().parent.parent)
    try:
        result = api.run(manifest, runner=runner, events=PlainEvents(sys.stdout), wait_s=float(sys.argv[3]) if len(sys.argv) > 3 else 5.0)
    except QuantgateError as exc:
        print(exc.render(), file=sys.stderr)
        return int(exc.exit_code)
    print("calls:", ",".join(runner.calls))
    return 0 if result.outcome.verdict == "locked" else 1


if __name__ == "__main__":
    sys.exit(main())
