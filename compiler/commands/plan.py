"""``quantgate plan [MANIFEST...] [--changed BASE] [--format text|markdown|json]``: the plays each
manifest needs, why, who signs them and their cache keys. Loads no model. Default: every manifest.

The JSON is stable (docs/playbook.md); CI reads it. One manifest named on the command line prints its
plan object, as before; otherwise (several, all, or ``--changed``) a JSON array of plan objects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "show which plays manifests need, why, and their cache keys"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="manifests to plan (default: every manifest under manifests/)")
    parser.add_argument("--changed", metavar="BASE", default=None,
                        help="the manifests the change BASE...HEAD touches (as `quantgate changed` lists them)")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from MANIFEST)")


def format_text(plan) -> str:
    lines = [f"plan for {plan.manifest_path} (backend {plan.backend}; {'may load a model' if plan.loads_model else 'loads no model'})"]
    for p in plan.plays:
        cond = f" [{p.condition}]" if p.condition else ""
        owners = "; ".join(f"{role}: {' '.join(people) or '-'}" for role, people in p.owners.items())
        lines.append(f"  {p.number}. {p.name:<16} {p.status:<8}{cond} {p.why}")
        lines.append(f"     trigger: {p.trigger}; owners: {owners}; key {p.cache_key[:12]}")
    lines += [f"  warning: {w}" for w in plan.warnings]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from compiler import api

    out = args.out
    paths = out.manifests(list(args.manifests), args.changed, args.root)
    plans = api.plans(paths, args.root)
    if args.format == "json":
        single = len(args.manifests) == 1 and not args.changed
        out.json(plans[0] if single else plans)
        return 0
    if not plans:
        out.note("no manifests to plan")
    for i, plan in enumerate(plans):
        if args.format == "markdown":
            from compiler.report.render import render_plan_markdown

            print(("\n" if i else "") + render_plan_markdown(plan), end="")
        else:
            print(format_text(plan))
    return 0
