"""A match you can look at: one self-contained HTML page of an archived match.

``replay_html(record)`` replays an archive record (:mod:`fraudarena_env.archive`) action by action
on a fresh ``Referee`` and draws, from the referee's public state only (``state``,
``episode_record()``, ``totals``, ``round_number``):

* the queue round by round (each ad's status at the end of every round), and each ad's truth once
  play is over;
* the evidence the investigator pulled and what it showed;
* the verdicts with their confidence (and the ads approved unreviewed at the end);
* the investigator's links as a graph over the queue, with the true rings drawn in;
* each role's reward over time, step by step, with the rounds marked;
* the fraudster's proposals and edits, and the auditor's flags.

The page fetches nothing: styles are inline, the charts are inline SVG, there is no script, and
its Content-Security-Policy forbids every fetch. ``fraudarena replay FILE --html OUT.html`` writes
it; a server started with ``fraudarena serve`` serves it at
``GET /api/v1/matches/{id}/replay.html`` for an archived match.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from .archive import replay
from .referee import Referee

ROLES = ("fraudster", "investigator", "auditor")
ROLE_COLOURS = {"fraudster": "#c0392b", "investigator": "#1f6fb2", "auditor": "#7d3c98"}
TRUTH_COLOURS = {"fraud": "#e74c3c", "legit": "#27ae60", "escalate": "#f39c12"}
STATUS_CLASSES = {"pending": "pending", "approve": "approve", "reject": "reject",
                  "escalate": "escalate"}
RING_COLOURS = ("#8e44ad", "#16a085", "#d35400", "#2c3e50", "#c71585", "#6b8e23")
RIGHT_VERDICT = {"fraud": "reject", "legit": "approve", "escalate": "escalate"}


@dataclass
class Timeline:
    """What the replay saw, step by step (filled by :func:`match_timeline`)."""

    steps: list[dict[str, Any]] = field(default_factory=list)  # role, round, totals after
    arrival: dict[str, int] = field(default_factory=dict)  # ad -> round it entered the queue
    # round -> ad -> status at the end of that round (the ads in the queue by then)
    end_of_round: dict[int, dict[str, str]] = field(default_factory=dict)
    referee: Referee | None = None


def _statuses(ref: Referee) -> dict[str, str]:
    inv = ref.state.investigator_state
    out = dict.fromkeys(inv.get("pending", []), "pending")
    for ad, v in inv.get("verdicts", {}).items():
        out[ad] = v["verdict"]
    return out


def match_timeline(record: dict[str, Any]) -> Timeline:
    """Replay ``record`` and keep, after every action, the totals and the queue's statuses."""
    tl = Timeline()
    current = {"round": 1}

    def note_queue(ref: Referee, step_round: int) -> None:
        statuses = _statuses(ref)
        for ad in statuses:
            tl.arrival.setdefault(ad, ref.round_number)
        # The step that ends a round also brings the next round's ads: they are not counted
        # as in the queue at the end of this one.
        tl.end_of_round[step_round] = {ad: s for ad, s in statuses.items()
                                       if tl.arrival[ad] <= step_round}

    def on_step(ref: Referee, step: dict[str, Any]) -> None:
        step_round = current["round"]
        tl.steps.append({"role": step["role"], "round": step_round,
                         "totals": [float(t) for t in ref.totals]})
        note_queue(ref, step_round)
        current["round"] = ref.round_number

    first = Referee()
    first.reset_match(**record["reset"])
    for ad in _statuses(first):
        tl.arrival[ad] = 1
    tl.referee = replay(record, on_step)
    return tl


# ----------------------------------------------------------------------------- drawing helpers
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _signed(x: float) -> str:
    return f"{x:+.2f}"


def _reward_chart(steps: list[dict[str, Any]], width: int = 960, height: int = 280) -> str:
    """Each role's match total after every step, as three lines; rounds marked."""
    pad_l, pad_r, pad_t, pad_b = 56, 200, 16, 34
    n = max(len(steps), 1)
    series = {r: [0.0] + [s["totals"][i] for s in steps] for i, r in enumerate(ROLES)}
    lo = min(min(v) for v in series.values())
    hi = max(max(v) for v in series.values())
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo

    def x(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * i / n

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (hi - v) / span

    parts = [f'<svg id="reward-chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="each role\'s reward over the match">',
             f'<rect x="{pad_l}" y="{pad_t}" width="{width - pad_l - pad_r}" '
             f'height="{height - pad_t - pad_b}" fill="#fbfbfb" stroke="#ccc"/>']
    if lo < 0 < hi:
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
                     'stroke="#999" stroke-dasharray="2 3"/>')
    for v in (lo, hi):
        parts.append(f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end" '
                     f'class="tick">{v:+.2f}</text>')
    previous = 1
    for i, s in enumerate(steps):
        if s["round"] != previous:
            parts.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{pad_t}" '
                         f'y2="{height - pad_b}" stroke="#bbb" stroke-dasharray="4 3"/>'
                         f'<text x="{x(i) + 3:.1f}" y="{height - pad_b + 14}" class="tick">'
                         f'round {s["round"]}</text>')
            previous = s["round"]
    parts.append(f'<text x="{pad_l}" y="{height - pad_b + 14}" class="tick">round 1</text>'
                 f'<text x="{width - pad_r}" y="{height - 4}" text-anchor="end" class="tick">'
                 f'step {len(steps)}</text>')
    for k, role in enumerate(ROLES):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(series[role]))
        colour = ROLE_COLOURS[role]
        parts.append(f'<polyline class="reward-line" data-role="{role}" points="{points}" '
                     f'fill="none" stroke="{colour}" stroke-width="2.5"/>')
        ly = pad_t + 18 + 22 * k
        parts.append(f'<line x1="{width - pad_r + 10}" x2="{width - pad_r + 30}" y1="{ly}" '
                     f'y2="{ly}" stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{width - pad_r + 36}" y="{ly + 4}">{role} '
                     f'{_signed(series[role][-1])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _link_graph(ads: list[str], truth: dict[str, str], rings: list[dict[str, Any]],
                links: list[list[str]], size: int = 560) -> str:
    """The queue on a circle (ring members side by side), each true ring's member pairs as a
    wide faint band in the ring's colour, and the investigator's links as lines: green when both
    ads are in one ring, red otherwise."""
    ring_of: dict[str, int] = {}
    for k, ring in enumerate(rings):
        for ad in ring["member_ad_ids"]:
            ring_of[ad] = k
    order = sorted(ads, key=lambda a: (ring_of.get(a, len(rings)), a))
    cx = cy = size / 2
    radius = size / 2 - 48
    pos = {}
    for i, ad in enumerate(order):
        angle = 2 * math.pi * i / max(len(order), 1) - math.pi / 2
        pos[ad] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    parts = [f'<svg id="link-graph" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
             'role="img" aria-label="the investigator\'s links and the true rings">']
    for k, ring in enumerate(rings):
        members = [a for a in ring["member_ad_ids"] if a in pos]
        colour = RING_COLOURS[k % len(RING_COLOURS)]
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                (x1, y1), (x2, y2) = pos[a], pos[b]
                parts.append(f'<line class="ring-edge" data-ring="{_e(ring["ring_id"])}" '
                             f'x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                             f'stroke="{colour}" stroke-opacity="0.28" stroke-width="14" '
                             'stroke-linecap="round"/>')
        for a in members:
            px, py = pos[a]
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="17" fill="none" '
                         f'stroke="{colour}" stroke-width="4"/>')
    for a, b in links:
        if a not in pos or b not in pos:
            continue
        right = a in ring_of and ring_of.get(a) == ring_of.get(b)
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(f'<line class="link {"right" if right else "wrong"}" x1="{x1:.1f}" '
                     f'y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                     f'stroke="{"#1e8449" if right else "#c0392b"}" stroke-width="3"/>')
    for ad in order:
        px, py = pos[ad]
        fill = TRUTH_COLOURS.get(truth.get(ad, ""), "#95a5a6")
        parts.append(f'<circle class="ad-node" data-ad="{_e(ad)}" cx="{px:.1f}" cy="{py:.1f}" '
                     f'r="11" fill="{fill}" stroke="#333" stroke-width="1"/>')
        lx = cx + (radius + 30) * (px - cx) / radius
        ly = cy + (radius + 30) * (py - cy) / radius
        parts.append(f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="middle" '
                     f'class="node-label">{_e(ad.removeprefix("ad_"))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(head: list[str], rows: list[list[str]], table_id: str) -> str:
    """Cells are HTML already (escaped by the caller)."""
    out = [f'<table id="{table_id}"><thead><tr>']
    out += [f"<th>{h}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _status_cell(status: str | None, confidence: float | None = None) -> str:
    if status is None:
        return '<span class="absent">·</span>'
    text = status if confidence is None else f"{status} {confidence:.2f}"
    return f'<span class="status {STATUS_CLASSES.get(status, "")}">{_e(text)}</span>'


def _truth_cell(truth: str | None) -> str:
    if truth is None:
        return '<span class="absent">hidden</span>'
    return f'<span class="truth {truth}">{_e(truth)}</span>'


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#555}.facts span{display:inline-block;margin-right:18px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f2f4f7}
td.copy{max-width:380px;font-size:12px;color:#444}
.status{padding:1px 5px;border-radius:3px;font-size:12px;white-space:nowrap}
.pending{background:#eceff1}.approve{background:#d5f5e3}.reject{background:#fadbd8}
.escalate{background:#fdebd0}.absent{color:#bbb}
.truth{font-weight:600}.truth.fraud{color:#c0392b}.truth.legit{color:#1e8449}
.truth.escalate{color:#b9770e}.ok{color:#1e8449}.bad{color:#c0392b}
.tick{font-size:11px;fill:#666}.node-label{font-size:11px;fill:#333}
.legend span{margin-right:14px}.swatch{display:inline-block;width:12px;height:12px;
vertical-align:middle;margin-right:4px;border-radius:6px}
.proposal{font-weight:600}
"""


def replay_html(record: dict[str, Any]) -> str:
    """The whole page for one archive record (see the module docstring)."""
    tl = match_timeline(record)
    ref = tl.referee
    state = ref.state.model_dump(mode="json")
    over = ref.end_reason is not None  # play is over: the truth may be shown
    episode = ref.episode_record()
    ads = [a["ad_id"] for a in episode["ads"]]
    facts = {a["ad_id"]: a for a in episode["ads"]}
    truth = {a: facts[a]["ground_truth"] for a in ads} if over else {}
    verdicts = state["investigator_state"].get("verdicts", {})
    rounds = sorted(tl.end_of_round) or [1]
    max_round = max(rounds)

    title = f"FraudArena match {record.get('match_id', '')}"
    grade = "" if ref.grader_score is None else (
        f"{ref.grader_score:.3f} (" + ", ".join(f"{k} {v:.3f}" for k, v in
                                               ref.grader_terms.items()) + ")")
    totals = dict(zip(ROLES, (float(t) for t in ref.totals)))
    head = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'; img-src data:">',
        '<link rel="icon" href="data:,">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(ref.task.task_id)} · seed {_e(ref.seed)} · archived as '
        f'{_e(record.get("reason", "?"))} · {len(tl.steps)} steps over {max_round} round(s)</p>',
        '<p class="facts">'
        f'<span>play ended: <b>{_e(ref.end_reason or "not yet")}</b></span>'
        f'<span>phase: {_e(ref.phase)}</span>'
        + (f"<span>grader: <b>{_e(grade)}</b></span>" if grade else "")
        + "".join(f'<span style="color:{ROLE_COLOURS[r]}">{r}: <b>{_signed(v)}</b></span>'
                  for r, v in totals.items()) + "</p>",
    ]
    if not over:
        head.append('<p class="meta">Play has not ended: the ads\' truth and the rings are '
                    "hidden.</p>")

    body = ['<h2 id="rewards-heading">Each role\'s reward over time</h2>',
            '<p class="meta">Match total after every step (dense rewards, then the ending '
            "rewards paid when play ends and on the auditor's flags).</p>",
            _reward_chart(tl.steps)]

    # ---- the queue, round by round
    round_heads = [f"end of round {r}" for r in range(1, max_round + 1)]
    rows = []
    for ad in sorted(ads, key=lambda a: (tl.arrival.get(a, 99), a)):
        f = facts[ad]
        cells = []
        for r in range(1, max_round + 1):
            here = tl.arrival.get(ad, 99) <= r
            cells.append(_status_cell(tl.end_of_round.get(r, {}).get(ad) if here else None))
        v = verdicts.get(ad)
        final = "" if v is None else _status_cell(v["verdict"], None if v["auto_approved"]
                                                   else v["confidence"])
        if v is not None and v["auto_approved"]:
            final += ' <span class="meta">(auto)</span>'
        proposal = over and f["is_fraudster_proposal"]
        ad_cell = f'<span class="{"proposal" if proposal else ""}">{_e(ad)}' + \
            (" ★" if proposal else "") + "</span>"
        rows.append([ad_cell, _e(f["category"]), f'<span class="copy">{_e(f["ad_copy"])}</span>',
                     str(tl.arrival.get(ad, "?")), *cells, final,
                     _truth_cell(truth.get(ad))])
    body += ['<h2 id="queue-heading">The queue, round by round</h2>',
             '<p class="meta">Each ad\'s status at the end of every round (· = not yet in the '
             "queue); ★ marks the fraudster's proposals once play is over.</p>",
             _table(["ad", "category", "copy", "arrived", *round_heads, "final verdict",
                     "truth"], rows, "queue")]

    # ---- evidence
    ev_rows = []
    for e in state["investigator_action_log"]:
        if e["action_type"] != "investigate":
            continue
        ev_rows.append([str(e["ts"]), str(e["round_number"]), _e(e["ad_id"]),
                        _e(e["investigation_target"]),
                        f'<span class="copy">{_e(e.get("findings_excerpt", ""))}</span>',
                        _signed(e["reward"]), _truth_cell(truth.get(e["ad_id"]))])
    body += ['<h2 id="evidence-heading">Evidence pulled, and what it showed</h2>',
             _table(["step", "round", "ad", "source", "what it showed", "reward", "truth"],
                    ev_rows, "evidence") if ev_rows else "<p>No evidence was pulled.</p>"]

    # ---- verdicts
    v_rows = []
    for e in state["investigator_action_log"]:
        if e["action_type"] != "verdict":
            continue
        t = truth.get(e["ad_id"])
        mark = "" if t is None else (
            '<span class="ok">right</span>' if RIGHT_VERDICT[t] == e["verdict"]
            else '<span class="bad">wrong</span>')
        v_rows.append([str(e["ts"]), str(e["round_number"]), _e(e["ad_id"]),
                       _status_cell(e["verdict"]), f'{e["confidence"]:.2f}',
                       _truth_cell(t), mark, _signed(e["reward"])])
    for ad, v in sorted(verdicts.items()):
        if v["auto_approved"]:
            t = truth.get(ad)
            mark = "" if t is None else ('<span class="ok">right</span>' if t == "legit"
                                         else '<span class="bad">wrong</span>')
            v_rows.append(["end", str(ref.round_number), _e(ad), _status_cell("approve") +
                           ' <span class="meta">(auto: never reviewed)</span>', "–",
                           _truth_cell(t), mark, ""])
    body += ['<h2 id="verdicts-heading">Verdicts, with confidence</h2>',
             _table(["step", "round", "ad", "verdict", "confidence", "truth", "", "reward"],
                    v_rows, "verdicts") if v_rows else "<p>No verdicts.</p>"]

    # ---- links and rings
    rings = episode["fraud_rings"] if over else []
    links = episode["links"]
    n_right = sum(1 for a, b in links if any(a in r["member_ad_ids"] and b in r["member_ad_ids"]
                                             for r in rings))
    legend = ('<p class="legend">'
              + "".join(f'<span><i class="swatch" style="background:{c}"></i>{t}</span>'
                        for t, c in TRUTH_COLOURS.items())
              + "".join(f'<span><i class="swatch" style="background:{RING_COLOURS[k % 6]};'
                        f'opacity:.6"></i>{_e(r["ring_id"])} ({_e(r["topology"])}: '
                        f'{_e(", ".join(r["member_ad_ids"]))})</span>'
                        for k, r in enumerate(rings))
              + '<span><b style="color:#1e8449">—</b> link within a ring</span>'
              + '<span><b style="color:#c0392b">—</b> link across rings or outside one</span>'
              + "</p>")
    body += ['<h2 id="links-heading">Links and the true rings</h2>',
             f'<p class="meta">{len(links)} link(s) drawn'
             + (f", {n_right} within a true ring; {len(rings)} ring(s)" if over else "")
             + ". Nodes are the queue's ads, coloured by truth; each ring's member pairs are "
             "drawn as wide bands in its colour.</p>",
             legend, _link_graph(ads, truth, rings, links)]

    # ---- fraudster and auditor
    f_rows = [[str(e["ts"]), str(e["round_number"]), _e(e["action_type"]), _e(e.get("ad_id") or ""),
               _e(e.get("category") or ""), _e(e.get("tactic") or e.get("edit") or ""),
               f'<span class="copy">{_e(e.get("ad_copy") or e.get("new_ad_copy") or "")}</span>',
               _truth_cell(truth.get(e.get("ad_id") or ""))
               if e["action_type"] in ("propose_ad", "modify_pending_ad") else ""]
              for e in state["fraudster_proposals"]]
    body += ['<h2 id="fraudster-heading">The fraudster\'s proposals and edits</h2>',
             _table(["step", "round", "action", "ad", "category", "tactic / edit", "copy",
                     "truth"], f_rows, "fraudster") if f_rows else "<p>None.</p>"]
    truth_flags = {(t, a) for t, a in ref.truth_flags}
    a_rows = []
    for e in state["auditor_action_log"]:
        if e["action_type"] == "submit_audit_report":
            a_rows.append([str(e["ts"]), "report submitted", "", "", ""])
            continue
        true = (e.get("flag_type"), e.get("target_ad_id")) in truth_flags
        a_rows.append([str(e["ts"]), _e(f'track {e.get("track", "")}: {e.get("flag_type")}'),
                       _e(e.get("target_ad_id") or "(match)"),
                       '<span class="ok">true</span>' if true else '<span class="bad">false</span>',
                       _signed(e.get("reward", 0.0))])
    body += ['<h2 id="audit-heading">The audit</h2>',
             f'<p class="meta">The rule audit found {len(truth_flags)} fault(s).</p>' if over
             else "",
             _table(["step", "flag", "ad", "confirmed", "reward"], a_rows, "audit")
             if a_rows else "<p>No audit yet.</p>",
             "</body></html>"]
    return "\n".join(head + body)


__all__ = ["Timeline", "match_timeline", "replay_html"]
