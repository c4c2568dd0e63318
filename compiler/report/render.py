"""Markdown for humans: the plan, the play-7 report and the pull-request comment (one renderer).

Contract:
- ``render_plan_markdown(plan) -> str``: ``plan`` is a ``compiler.playbook.plan.Plan`` or its ``to_dict()``.
- ``render_report_markdown(lock, plots=None, heading=True) -> str``: ``lock`` is the lock as plain
  data (``compiler.playbook.lockfile.read_lock``); ``plots`` maps a plot name to a path relative to the
  report (omitted: no images). The PR comment embeds the same body with ``heading=False``.

Every manifest-derived string goes through ``compiler.report.escape.md`` (the ``md`` filter); hashes and
layer names go through ``code``. Templates live in ``compiler/templates``.
"""

from __future__ import annotations

from typing import Any

from compiler.report.escape import code, md

TEMPLATES = "templates"


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("compiler.report", TEMPLATES),
        autoescape=False,  # Markdown, not HTML: escaping is explicit through the md/code filters
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md
    env.filters["code"] = code
    env.filters["num"] = number
    env.filters["signed"] = signed
    env.filters["size"] = size
    env.filters["short"] = lambda h: code(str(h)[:12]) if h else "—"
    return env


def number(value: Any, digits: int = 4) -> str:
    """A metric for a table: fixed digits, '—' for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return md(value)


def signed(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{float(value):+.{digits}f}"


def size(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _plan_dict(plan: Any) -> dict:
    return plan if isinstance(plan, dict) else plan.to_dict()


def render_plan_markdown(plan: Any) -> str:
    return _environment().get_template("plan.md.j2").render(plan=_plan_dict(plan))


def report_view(lock: dict) -> dict:
    """What the templates show, read defensively from a lock (a refused lock has no final/deltas)."""
    plays = lock.get("plays") or {}
    view: dict[str, Any] = {}
    verdict = lock.get("verdict")
    final = lock.get("final") or {}
    view["verdict_text"] = f"locked ({final.get('candidate', '?')})" if verdict == "locked" else str(verdict or "unknown")
    base = (plays.get("baseline") or {}).get("result") or {}
    fraction = None
    view["hardest_pct"] = "slice"
    ids = base.get("hardest_ids")
    n = ((base.get("quality") or {}).get("n_examples"))
    if ids and n:
        fraction = len(ids) / n
        view["hardest_pct"] = f"{fraction:.0%}"
    view["plays"] = [
        {"number": e.get("number"), "name": name, "status": e.get("status"), "why": e.get("why") or ""}
        for name, e in plays.items() if isinstance(e, dict)
    ]
    view["envelope"] = (plays.get("envelope") or {}).get("result")
    view["judgments"] = ((plays.get("gate") or {}).get("result") or {}).get("judgments") or []
    mp = (plays.get("mixed_precision") or {}).get("result") or {}
    view["curve"] = mp.get("evaluations") or []
    sens = mp.get("sensitivity") or {}
    view["sensitivity"] = sorted(sens.items(), key=lambda kv: (-kv[1], kv[0]))
    by_play = (lock.get("evaluations") or {}).get("by_play") or {}
    view["by_play"] = list(by_play.items())
    candidate = None
    if final.get("candidate"):
        result = (plays.get(final["candidate"]) or {}).get("result") or {}
        candidate = result.get("best") if final["candidate"] == "mixed_precision" else result.get("candidate") if final["candidate"] == "qat" else result
    view["degraded"] = (candidate or {}).get("most_degraded") or []
    view["environment"] = (lock.get("environment") or {}).get("baseline")
    return view


def render_report_markdown(lock: dict, plots: dict[str, str] | None = None, heading: bool = True) -> str:
    return _environment().get_template("report.md.j2").render(lock=lock, view=report_view(lock), plots=plots or {}, heading=heading)


def render_comment_markdown(lock: dict | None, plan: Any | None = None, marker: str = "<!-- quantgate -->") -> str:
    """The one pull-request comment: the plan, and the results when a lock exists."""
    return _environment().get_template("comment.md.j2").render(
        lock=lock, view=report_view(lock) if lock is not None else None,
        plan=_plan_dict(plan) if plan is not None else None, plots={}, marker=marker, heading=False,
    )
