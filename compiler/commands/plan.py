"""``quantgate plan MANIFEST [--format text|markdown|json]``: the plays a manifest needs, why, who
signs them and their cache keys. Loads no model. The JSON is stable (docs/playbook.md); CI reads it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show which plays a manifest needs, why, and their cache keys"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from MANIFEST)")


def format_text(plan) -> str:
    lines = [f"plan for {plan.manifest_path} (backend {plan.backend}; {'may load a model' if plan.loads_model else 'loads no model'})"]
    for p in plan.plays:
        cond = f" [{p.condition}]" if p.condition else ""
        owners = "; ".join(f"{role}: {' '.join(people) or '-'}" for role, people in p.owners.items())
        lines.append(f"  {p.number}. {p.name:<16} {p.status:<8}{cond} {p.why}")
        lines.append(f"     trigger: {p.trigger}; owners: {owners}; key {p.cache_key[:12]}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from compiler import api

    plan = api.plan(args.manifest, args.root)
    if args.format == "json":
        print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
    elif args.format == "markdown":
        from compiler.report.render import render_plan_markdown

        print(render_plan_markdown(plan), end="")
    else:
        print(format_text(plan))
    return 0
