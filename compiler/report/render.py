"""Markdown for humans: the plan, the play-7 report and the pull-request comment (one view, two layouts).

Contract:
- ``render_plan_markdown(plan) -> str``: ``plan`` is a ``compiler.playbook.plan.Plan`` or its ``to_dict()``.
- ``render_report_markdown(lock, plots=None, heading=True, root=None) -> str``: ``lock`` is a
  ``compiler.playbook.lockmodel.Lock`` or its ``data()``; ``plots`` maps a plot name to a path relative
  to the report (omitted: no images); ``root`` is the repository (default: the one around the working
  directory), read for the manifest's owners and targets and the degraded examples' text
  (``compiler.report.context``).
- ``render_comment_markdown(lock, plan=None, marker=..., root=None) -> str``: the pull-request comment.

Both documents open the same way, so a reviewer can decide from the first screen: the verdict, the
decision asked of them, who must approve (``@login``, with the roles still missing), and one table of
the deltas with units and the gate's limits. The comment then folds everything else into
``<details>`` sections and draws the trade-off as a Mermaid chart (GitHub renders Mermaid in comments,
where a PNG cannot be hosted); the report shows the same sections under headings, with PNG plots.

Escaping (``compiler.report.escape``): manifest-, lock- and dataset-derived text goes through ``md``
(table cells) or ``prose`` (paragraphs), hashes, paths and layer names through ``code``; the people
quantgate asks to approve through ``mention`` (validated logins, live mentions). Nothing else is
escaped, so the raw file reads cleanly in a diff.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from compiler.report.behaviour import behaviour_view, mermaid_buckets
from compiler.report.context import EXAMPLE_NOUN, PER_EXAMPLE, Context, load_context
from compiler.report.escape import code, md, mention, prose

TEMPLATES = "templates"
MARKER = "<!-- quantgate -->"
#: Play -> roles that sign it (``compiler.vocabulary.PLAY_SIGNERS``, as plain strings).
CANDIDATE_PLAYS = ("ptq", "mixed_precision", "qat")
DEGRADED_SHOWN = 10


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("compiler.report", TEMPLATES),
        autoescape=False,  # Markdown, not HTML: escaping is explicit through the md/prose/code filters
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md
    env.filters["prose"] = prose
    env.filters["code"] = code
    env.filters["cellcode"] = lambda v: code(v, cell=True)
    env.filters["num"] = number
    env.filters["signed"] = signed
    env.filters["size"] = size
    env.filters["short"] = lambda h: code(str(h)[:12]) if h else "—"
    return env


# ------------------------------------------------------------------------------------------ numbers


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
    text = f"{float(value):+.{digits}f}"
    return text.replace("-", "−")


def size(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def ratio(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}×"


def _ms(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f} ms"


def _mib(value: Any) -> float | None:
    return None if value is None else float(value) / 2**20


# --------------------------------------------------------------------------------------- the view


def _plan_dict(plan: Any) -> dict:
    return plan if isinstance(plan, dict) else plan.to_dict()


def _lock_dict(lock: Any) -> dict:
    return lock if isinstance(lock, dict) else lock.data()


def _result(lock: dict, play: str) -> dict:
    return ((lock.get("plays") or {}).get(play) or {}).get("result") or {}


def _candidate_result(lock: dict, play: str) -> dict:
    """The ``CandidateResult`` a candidate play produced (mixed precision: its best; QAT: its candidate)."""
    result = _result(lock, play)
    if play == "mixed_precision":
        return result.get("best") or {}
    if play == "qat":
        return result.get("candidate") or {}
    return result


#: How the gate records a wrong move the manifest accepted in writing (compiler.playbook.gate).
ACCEPTED = "accepted in writing by gate.accept_wrong_move: "


def _judgments(lock: dict) -> list[dict]:
    return _result(lock, "gate").get("judgments") or []


def _owners(plan: dict | None, ctx: Context) -> dict[str, list[str]]:
    """role -> logins: the plan's (the manifest as it is now), else the manifest read from the repository."""
    owners: dict[str, list[str]] = {}
    for p in (plan or {}).get("plays") or []:
        for role, people in (p.get("owners") or {}).items():
            owners.setdefault(role, list(people))
    for role, people in ctx.owners.items():
        owners.setdefault(role, list(people))
    return owners


def _signer_plays() -> dict[str, list[str]]:
    from compiler.vocabulary import PLAY_SIGNERS

    roles: dict[str, list[str]] = {}
    for play, signers in PLAY_SIGNERS.items():
        for role in signers:
            roles.setdefault(str(role.value if hasattr(role, "value") else role), []).append(str(getattr(play, "value", play)))
    return roles


def _people(role: str, owners: dict[str, list[str]]) -> str:
    people = owners.get(role) or []
    if not owners:
        return md(role)  # the manifest was not read: roles only
    if not people:
        return f"{md(role)} (no owner named in the manifest)"
    names = ", ".join(mention(p) for p in people)
    return f"{names if len(people) == 1 else 'one of ' + names} ({md(role)})"


def _approval(lock: dict | None, plan: dict | None, owners: dict[str, list[str]]) -> str:
    """Who must approve, by ``@login`` (live mentions), and which roles are still missing."""
    by_role = _signer_plays()
    unknown = "" if owners else " (owners: see the manifest)"
    if lock is None:
        running = {p["name"] for p in (plan or {}).get("plays") or [] if p.get("status") == "run"} | {"lock"}
        roles = [r for r, plays in by_role.items() if running & set(plays)]
        return f"**Will need approval from:** {' · '.join(_people(r, owners) for r in roles)}{unknown}."
    signoff = lock.get("signoff") or {}
    missing = list(signoff.get("missing") or [])
    signed = [f"{md(r.get('role'))} by {md('@' + str(r.get('login', '')).lstrip('@'))}" for r in signoff.get("records") or []]
    if signoff.get("status") == "complete" or not missing:
        return f"**Signed off:** {', '.join(signed) or 'nothing left to sign'}."
    people = " · ".join(_people(r, owners) for r in missing)
    if lock.get("verdict") != "locked":
        return f"**Owners to act:** {people}{unknown}. Nothing to approve until a run locks."
    done = f" Already signed: {', '.join(signed)}." if signed else ""
    total = len(missing) + len(signed)
    return (f"**Approve the pull request to sign** ({len(missing)} of {total} role{'s' if total != 1 else ''} missing): "
            f"{people}{unknown}. Request changes to block it.{done}")


def _what(final: dict) -> str:
    protected = len(final.get("protected_layers") or ())
    what = f"{final.get('weights')} weights"
    what += ", weight-only" if final.get("activations") in (None, "none") else f", {final.get('activations')} activations"
    what += f", group size {final['group_size']}" if final.get("group_size") else ""
    what += f", {protected} layer{'s' if protected != 1 else ''} kept at fp32" if protected else ""
    return md(what)


def _why(lock: dict) -> list[str]:
    lines = []
    for j in _judgments(lock):
        text = f"{md(j.get('candidate'))}: **{md(j.get('decision'))}** — " + "; ".join(prose(r) for r in j.get("reasons") or [])
        text += "".join(f"; ⚠️ {prose(w)}" for w in j.get("warnings") or [])
        lines.append(text)
    envelope = _result(lock, "envelope")
    if envelope:
        text = f"envelope (play 2): **{prose(envelope.get('verdict'))}**"
        if envelope.get("reasons"):
            text += " — " + "; ".join(prose(r) for r in envelope["reasons"])
        if envelope.get("memory_needed_bytes"):
            text += f" (needs {size(envelope['memory_needed_bytes'])} of a {size(envelope.get('memory_budget_bytes'))} budget)"
        lines.append(text)
    if lock.get("next_step"):
        lines.append(f"next step: {prose(lock['next_step'])}")
    return lines


def _points(lock: dict, judged: dict[str, str]) -> list[dict]:
    """Every configuration measured: fp32, each candidate, each mixed-precision evaluation."""
    base = _result(lock, "baseline")
    points: list[dict] = []
    if base.get("quality"):
        perf = base.get("performance") or {}
        points.append({"label": "fp32 baseline", "short": "fp32", "play": "baseline", "value": base["quality"]["value"],
                       "hardest": base["quality"]["hardest"], "footprint": perf.get("footprint_bytes"),
                       "p95": perf.get("latency_p95_ms"), "decision": None, "layers": None})
    final = (lock.get("final") or {}).get("candidate")
    for play in CANDIDATE_PLAYS:
        cand = _candidate_result(lock, play)
        if play == "mixed_precision":
            best_layers = tuple(cand.get("protected_layers") or ())
            for e in _result(lock, play).get("evaluations") or []:
                if e.get("kind") != "full" or tuple(e.get("protected_layers") or ()) == best_layers or not e.get("protected_layers"):
                    continue  # k = 0 is plain PTQ, already a point
                k = len(e.get("protected_layers") or ())
                points.append({"label": f"mixed precision, {k} layer{'s' if k != 1 else ''} at fp32 (search)", "short": f"mp k={k}", "play": play,
                               "value": e["value"], "hardest": e["hardest"], "footprint": e.get("footprint_bytes"),
                               "p95": None, "decision": "pass" if e.get("passed") else "miss", "layers": k})
        if not cand.get("quality"):
            continue
        perf = cand.get("performance") or {}
        k = len(cand.get("protected_layers") or ())
        label = {"ptq": "ptq", "mixed_precision": f"mixed precision, {k} layer{'s' if k != 1 else ''} at fp32", "qat": "qat"}[play]
        short = {"ptq": "ptq", "mixed_precision": f"mp k={k}", "qat": "qat"}[play]
        points.append({"label": label + (" (locked)" if play == final else ""), "short": short, "play": play,
                       "value": cand["quality"]["value"], "hardest": cand["quality"]["hardest"],
                       "footprint": perf.get("footprint_bytes"), "p95": perf.get("latency_p95_ms"),
                       "decision": judged.get(play), "layers": k, "final": play == final})
    return points


def _shown_candidate(lock: dict) -> str | None:
    """The candidate the summary compares with fp32: the locked one, else the last one judged."""
    final = (lock.get("final") or {}).get("candidate")
    if final:
        return final
    judgments = _judgments(lock)
    return judgments[-1]["candidate"] if judgments else None


def _worse(base: float, cand: float, lower_is_better: bool) -> float:
    return cand - base if lower_is_better else base - cand


def _summary_rows(lock: dict, ctx: Context, candidate: str | None) -> tuple[list[dict], dict]:
    """The deltas table (quality overall + hardest slice, footprint, p95 latency, peak memory) and facts
    for the decision sentence."""
    base = _result(lock, "baseline")
    if not base.get("quality"):
        return [], {}
    cand = _candidate_result(lock, candidate) if candidate else {}
    judgment = next((j for j in reversed(_judgments(lock)) if j.get("candidate") == candidate), None)
    metric = (lock.get("deltas") or {}).get("metric") or base["quality"].get("metric") or "quality"
    lower = bool((lock.get("deltas") or {}).get("lower_is_better", metric == "perplexity"))
    arrow = "↓" if lower else "↑"
    n = base["quality"].get("n_examples")
    noun = EXAMPLE_NOUN.get(ctx.task or "", "examples")
    hardest_n = len(base.get("hardest_ids") or ())
    share = f"{hardest_n / n:.0%} " if n and hardest_n else ""
    bq, bp = base["quality"], base.get("performance") or {}
    cq, cp = cand.get("quality") or {}, cand.get("performance") or {}
    bar = (judgment or {}).get("bar") or {}
    budget = (_result(lock, "envelope") or {}).get("memory_budget_bytes")
    facts: dict[str, Any] = {"metric": metric, "lower": lower, "hardest_definition": base.get("hardest_definition")}
    rows = []
    for key, label in (("value", f"{metric} {arrow}, all {n} {noun}" if n else f"{metric} {arrow}, overall"),
                       ("hardest", f"{metric} {arrow}, hardest {share}({hardest_n} {noun})" if hardest_n else f"{metric} {arrow}, hardest slice")):
        b, c = bq.get(key), cq.get(key)
        limit = bar.get("overall" if key == "value" else "hardest")
        change = worse = None
        if b is not None and c is not None:
            change = c - b
            worse = _worse(b, c, lower)
        ok = None if c is None or limit is None else (c <= limit + 1e-9 if lower else c >= limit - 1e-9)
        allowed = None if limit is None or b is None else abs(b - limit)
        pct = f" ({change / abs(b):+.1%})".replace("-", "−") if change is not None and b else ""
        rows.append({"label": label, "baseline": number(b), "candidate": number(c),
                     "change": (signed(change) + pct) if change is not None else "—",
                     "gate": "—" if limit is None else f"{'≤' if lower else '≥'} {number(limit)} {_mark(ok)}"})
        facts["overall" if key == "value" else "hardest"] = {"worse": worse, "allowed": allowed, "ok": ok, "base": b}
    fb, fc = bp.get("footprint_bytes"), cp.get("footprint_bytes")
    fits = None if fc is None or budget is None else fc <= budget
    rows.append({"label": "footprint (weights in memory)", "baseline": size(fb), "candidate": size(fc), "change": ratio(_div(fc, fb)),
                 "gate": "—" if budget is None else f"≤ {size(budget)} {_mark(fits)}"})
    pb, pc = bp.get("latency_p95_ms"), cp.get("latency_p95_ms")
    target = ctx.latency_target_ms
    met = None if pc is None or target is None else pc <= target
    shape = f", batch {bp['batch_size']} × {bp['sequence_length']} tokens" if bp.get("batch_size") and bp.get("sequence_length") else ""
    rows.append({"label": f"p95 latency{shape}", "baseline": _ms(pb), "candidate": _ms(pc), "change": ratio(_div(pc, pb)),
                 "gate": "—" if target is None else f"target {target:g} ms {'✅' if met else '⚠️ warning only' if met is False else ''}".rstrip()})
    mb, mc = bp.get("peak_memory_bytes"), cp.get("peak_memory_bytes")
    rows.append({"label": "peak memory (fresh process)", "baseline": size(mb), "candidate": size(mc), "change": ratio(_div(mc, mb)), "gate": "—"})
    facts.update(footprint=_div(fc, fb), latency=_div(pc, pb), latency_met=met, fits=fits)
    return rows, facts


def _div(a: Any, b: Any) -> float | None:
    return None if a is None or not b else float(a) / float(b)


def _mark(ok: bool | None) -> str:
    return "" if ok is None else "✅" if ok else "❌"


def _headline(lock: dict | None, plan: dict | None, candidate: str | None, numbers: str) -> tuple[str, str]:
    """(the verdict line, the decision asked of the reviewer), Markdown."""
    if lock is None:
        runs = [p["name"] for p in (plan or {}).get("plays") or [] if p.get("status") == "run"]
        return ("📋 Plan only: nothing measured yet",
                f"nothing yet. The run plays {', '.join(runs) or 'nothing'}; its numbers replace this text.")
    final = lock.get("final")
    if lock.get("verdict") == "locked" and final:
        signed_off = (lock.get("signoff") or {}).get("status") == "complete"
        verdict = f"✅ Locked: {final['candidate']} passed the gate" + (" and is signed off" if signed_off else ", waiting for sign-off")
        decision = f"ship {_what(final)} ({md(final['candidate'])} on {md(final.get('backend'))}) instead of the fp32 model?"
        return verdict, decision + (f" {numbers}" if numbers else "")
    step = lock.get("next_step")
    tried = f" ({candidate} was the last candidate tried)" if candidate else ""
    judgments = ((((lock.get("plays") or {}).get("gate") or {}).get("result") or {}).get("judgments") or [])
    reasons = judgments[-1].get("reasons") if judgments else None
    why = f" The gate's first reason: {prose(reasons[0])}." if reasons else ""
    return (f"❌ Refused: nothing ships{tried}",
            "how to proceed." + why + (f" Next step: {prose(step)}" if step else "") + (f" {numbers}" if numbers else ""))


def _decision_numbers(facts: dict) -> str:
    if not facts or facts.get("overall", {}).get("worse") is None:
        return ""
    metric = facts["metric"]
    parts = []
    for key, where in (("overall", "overall"), ("hardest", "on the hardest slice")):
        f = facts.get(key) or {}
        if f.get("worse") is None:
            continue
        verb = ("rises" if facts["lower"] else "drops") if f["worse"] > 0 else "improves"
        share = f" ({abs(f['worse']) / abs(f['base']):.1%})" if f.get("base") else ""
        allowed = ""
        if f.get("allowed") is not None:
            allowed = f", allowed {number(f['allowed'])}" + (f" ({f['allowed'] / abs(f['base']):.1%})" if f.get("base") else "")
        mark = f" {_mark(f.get('ok'))}" if f.get("ok") is not None else ""
        parts.append(f"{metric} {where} {verb} by {number(abs(f['worse']))}{share}{mark}{allowed}")
    sizes = []
    if facts.get("footprint") is not None:
        sizes.append(f"footprint {ratio(facts['footprint'])}")
    if facts.get("latency") is not None:
        sizes.append(f"p95 latency {ratio(facts['latency'])}")
    text = "; ".join(parts)
    text = text[0].upper() + text[1:]
    return text + (f"; {' and '.join(sizes)} of fp32." if sizes else ".")


def _plays_table(lock: dict | None, plan: dict | None, owners: dict[str, list[str]]) -> list[dict]:
    """One row per play: the lock's status and why when there is a lock, else the plan's; owners and key."""
    rows = []
    planned = {p["name"]: p for p in (plan or {}).get("plays") or []}
    played = (lock or {}).get("plays") or {}
    by_role = _signer_plays()
    names = list(planned) or list(played)
    for name in names:
        entry, p = played.get(name) or {}, planned.get(name) or {}
        signers = [r for r, plays in by_role.items() if name in plays]
        people = "; ".join(f"{md(r)}: {' '.join(md(x) for x in owners.get(r, [])) or '—'}" for r in signers) or "—"
        if lock is not None and entry:
            status, why = entry.get("status", "—"), entry.get("why") or ""
        else:
            status = p.get("status", "—") + (f" ({p['condition']})" if p.get("condition") else "")
            why = (p.get("trigger") if p.get("status") == "run" else p.get("why")) or p.get("why") or p.get("trigger") or ""
        rows.append({"number": entry.get("number", p.get("number", "")), "name": name, "status": md(status), "why": md(why),
                     "owners": people, "key": entry.get("cache_key") or p.get("cache_key")})
    return rows


def _degraded(lock: dict, candidate: str | None, ctx: Context) -> dict:
    rows = []
    items = (_candidate_result(lock, candidate).get("most_degraded") or []) if candidate else []
    name, unit = PER_EXAMPLE.get(ctx.task or "", ("per-example error", "the runner's per-example score, negated"))
    for e in items[:DEGRADED_SHOWN]:
        rows.append({"id": e.get("id"), "text": ctx.texts.get(str(e.get("id"))), "baseline": -float(e["baseline"]),
                     "candidate": -float(e["candidate"]), "worse": float(e["baseline"]) - float(e["candidate"])})
    return {"rows": rows, "name": name, "unit": unit, "note": ctx.texts_note, "texts": any(r["text"] for r in rows)}


def report_view(lock: Any, plan: Any | None = None, root: Path | None = None) -> dict:
    """Everything the templates show, computed once (a refused lock has no final or deltas)."""
    lock = _lock_dict(lock) if lock is not None else None
    plan = _plan_dict(plan) if plan is not None else None
    candidate = _shown_candidate(lock) if lock else None
    ids = [str(e.get("id")) for e in (_candidate_result(lock, candidate).get("most_degraded") or [])] if lock and candidate else []
    ctx = load_context(lock, root, ids[:DEGRADED_SHOWN]) if lock else Context()
    owners = _owners(plan, ctx)
    view: dict[str, Any] = {"name": (lock or plan or {}).get("name", "?"), "candidate": candidate}
    view["approval"] = _approval(lock, plan, owners)
    view["latency_target_ms"] = ctx.latency_target_ms
    view["plays"] = _plays_table(lock, plan, owners)
    counts: dict[str, int] = {}
    for p in view["plays"]:
        counts[p["status"].split(" ")[0]] = counts.get(p["status"].split(" ")[0], 0) + 1
    view["plays_summary"] = ", ".join(f"{n} {status}" for status, n in counts.items())
    view["stale"] = bool(lock and plan and plan.get("manifest_sha256") and plan["manifest_sha256"] != lock["manifest"]["sha256"])
    view["rerun"] = [p["name"] for p in (plan or {}).get("plays") or [] if p.get("status") == "run"]
    if lock is None:
        view.update(accepted=None, rows=[], facts={}, points=[], judgments=[], envelope=None, curve=[], sensitivity=[], why=[],
                    degraded={"rows": []}, environment=None, final=None, by_play=[], evaluations=None, next_step=None,
                    manifest=None, protected=[], mermaid=None, what="", behaviour={"rows": [], "series": []}, mermaid_buckets=None)
        view["verdict"], view["decision"] = _headline(None, plan, None, "")
        return view
    judged = {j["candidate"]: j["decision"] for j in _judgments(lock)}
    view["rows"], view["facts"] = _summary_rows(lock, ctx, candidate)
    view["verdict"], view["decision"] = _headline(lock, plan, candidate, _decision_numbers(view["facts"]))
    view["why"] = _why(lock)
    view["what"] = _what(lock["final"]) if lock.get("final") else ""
    view["points"] = _points(lock, judged)
    view["judgments"] = _judgments(lock)
    envelope = _result(lock, "envelope")
    view["envelope"] = envelope or None
    mp = _result(lock, "mixed_precision")
    view["curve"] = mp.get("evaluations") or []
    view["cap_layers"] = mp.get("cap_layers")
    sens = mp.get("sensitivity") or {}
    view["final"] = lock.get("final")
    view["calibration_fit"] = _result(lock, "ptq").get("calibration_fit")  # runners.calibration_fit, measured by ptq
    view["protected"] = list((lock.get("final") or {}).get("protected_layers") or ())
    view["sensitivity"] = sorted(sens.items(), key=lambda kv: (-kv[1], kv[0]))
    view["degraded"] = _degraded(lock, candidate, ctx)
    view["environment"] = (lock.get("environment") or {}).get("baseline")
    view["evaluations"] = lock.get("evaluations") or {}
    view["by_play"] = list((view["evaluations"].get("by_play") or {}).items())
    view["next_step"] = lock.get("next_step")
    view["manifest"] = lock.get("manifest")
    view["results_sha256"] = lock.get("results_sha256")
    view["mermaid"] = mermaid_tradeoff(view["points"], view["facts"], view["judgments"], candidate)
    view["behaviour"] = behaviour_view(lock)
    view["mermaid_buckets"] = mermaid_buckets(view["behaviour"])
    # A wrong move locked only because the manifest says why: the reviewers see that reason up front.
    view["accepted"] = next((w.split(": ", 1)[1].strip("'\"") for j in _judgments(lock) if j.get("candidate") == candidate
                             for w in j.get("warnings") or [] if w.startswith(ACCEPTED)), None)
    return view


# ---------------------------------------------------------------------------------------- mermaid


def _nice_range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    span = (high - low) or abs(high) * 0.01 or 1.0
    low, high = low - span * 0.15, high + span * 0.15
    step = 10 ** math.floor(math.log10(span / 5)) if span > 0 else 0.001
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _fmt_axis(x: float) -> str:
    return f"{x:.6g}"


def _mermaid_label(text: str) -> str:
    return re.sub(r'["\[\]\n`]', "", text)


def mermaid_tradeoff(points: list[dict], facts: dict, judgments: list[dict], candidate: str | None) -> str | None:
    """A Mermaid ``xychart-beta``: the overall metric of fp32 and every configuration measured (bars;
    each label carries its footprint and p95 latency), and the gate's bar (the line: the worst value the
    gate allows). ``None`` when nothing was measured."""
    if not points or not facts:
        return None
    judgment = next((j for j in reversed(judgments) if j.get("candidate") == candidate), judgments[-1] if judgments else None)
    bar = ((judgment or {}).get("bar") or {}).get("overall")
    values = [p["value"] for p in points]
    low, high = _nice_range(values + ([bar] if bar is not None else []))
    labels = []
    for p in points:
        extras = [f"{_mib(p['footprint']):.1f} MiB" if p.get("footprint") is not None else None,
                  f"{p['p95']:.0f} ms" if p.get("p95") is not None else None]
        labels.append(_mermaid_label(" · ".join([p["short"], *[e for e in extras if e]])))
    metric = _mermaid_label(str(facts.get("metric", "quality")))
    direction = "lower is better" if facts.get("lower") else "higher is better"
    lines = ["xychart-beta",
             f'    title "{metric} ({direction}) per configuration; line = worst value the gate allows"',
             "    x-axis [" + ", ".join(f'"{label}"' for label in labels) + "]",
             f'    y-axis "{metric}" {_fmt_axis(low)} --> {_fmt_axis(high)}',
             "    bar [" + ", ".join(_fmt_axis(round(v, 6)) for v in values) + "]"]
    if bar is not None:
        lines.append("    line [" + ", ".join(_fmt_axis(round(bar, 6)) for _ in values) + "]")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- render


def _tidy(text: str) -> str:
    """No trailing spaces, never more than one blank line, one final newline."""
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def render_plan_markdown(plan: Any) -> str:
    plan = _plan_dict(plan)
    view = {"plays": _plays_table(None, plan, _owners(plan, Context()))}
    return _tidy(_environment().get_template("plan.md.j2").render(plan=plan, view=view))


def render_report_markdown(lock: Any, plots: dict[str, str] | None = None, heading: bool = True,
                           root: Path | None = None) -> str:
    lock = _lock_dict(lock)
    view = report_view(lock, None, root)
    return _tidy(_environment().get_template("report.md.j2").render(lock=lock, view=view, plots=plots or {}, heading=heading))


def render_comment_markdown(lock: Any | None, plan: Any | None = None, marker: str = MARKER, root: Path | None = None) -> str:
    """The one pull-request comment: decision first, details folded; the plan alone before a run."""
    lock = _lock_dict(lock) if lock is not None else None
    plan = _plan_dict(plan) if plan is not None else None
    view = report_view(lock, plan, root)
    return _tidy(_environment().get_template("comment.md.j2").render(lock=lock, view=view, plan=plan, marker=marker))
