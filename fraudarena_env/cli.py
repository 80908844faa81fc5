"""The ``fraudarena`` command line.

    fraudarena play --task task_3 --seed 7              # one match, as a readable transcript
    fraudarena play --task task_1 --seed 1 --investigator always_reject --face text
    fraudarena evaluate --task all --seeds 1000-1049    # baselines vs degenerate policies
    fraudarena evaluate --task task_3 --investigator oracle run/snapshots/investigator_g1.zip --json
    fraudarena bench --quick                            # env and referee speed
    fraudarena train ...                                # training/selfplay.py (training extra)

``play`` and ``evaluate`` run matches straight on the referee (``fraudarena_env.arena``), so they
need neither PettingZoo's loop nor torch (``evaluate`` imports torch only to load a checkpoint).
``rich`` (in the ``train`` extra) makes the transcript nicer when it is installed, and ``tqdm``
draws ``evaluate``'s progress bar; both are optional.
Every transcript is a function of the seed and the chosen policies alone.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sqlite3
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .arena import Arena, MatchResult, evaluate_matches, outcome_counts, repeated, same_ring
from .policies import (
    BASELINES,
    DEGENERATE_INVESTIGATORS,
    FlagEverythingAuditor,
    GibberishFraudster,
    OracleInvestigator,
    Policy,
    RandomPolicy,
    RepeatOneAdFraudster,
    WaitingFraudster,
)
from .referee import Referee
from .rules.catalog import (
    AD_SLOT,
    CATEGORIES,
    CORRECT_VERDICT,
    ESCALATE,
    FRAUD,
    LABELS,
    LEGIT,
    ROLES,
    TASK_IDS,
    TASKS,
    VERDICTS,
)
from .rules.referee import MAX_SEED
from .rules.scoring import verdict_reward

# name -> factory(seed=...) for each role; the first name is the role's scripted baseline.
FRAUDSTERS: dict[str, Callable[..., Policy]] = {
    "reactive": BASELINES["fraudster"],
    "waiting": WaitingFraudster,  # reactive, but holds its ads for the last proposal rounds
    "waiting_any": lambda seed=None: WaitingFraudster(None, seed),  # how long: drawn per match
    # reactive's timing and categories, the hidden tactics only (subtle, camouflaged)
    "hidden": lambda seed=None: WaitingFraudster(1.0, seed, ("subtle", "camouflaged")),
    "gibberish": GibberishFraudster,
    "repeat": RepeatOneAdFraudster,
    "random": lambda seed=None: RandomPolicy("fraudster", seed),
}
INVESTIGATORS: dict[str, Callable[..., Policy]] = {
    "scripted": BASELINES["investigator"],
    **DEGENERATE_INVESTIGATORS,
}
AUDITORS: dict[str, Callable[..., Policy]] = {
    "heuristic": BASELINES["auditor"],
    "flag_everything": FlagEverythingAuditor,
    "random": lambda seed=None: RandomPolicy("auditor", seed),
}
POLICIES = {"fraudster": FRAUDSTERS, "investigator": INVESTIGATORS, "auditor": AUDITORS}
BASELINE_NAMES = {role: next(iter(table)) for role, table in POLICIES.items()}
# `evaluate` also takes these names (not `play`: the oracle reads the truth, it is a ceiling)
EVALUATE_ONLY: dict[str, dict[str, Callable[..., Policy]]] = {
    "investigator": {"oracle": OracleInvestigator}, "fraudster": {}, "auditor": {}}
COPY_WIDTH = 56
# the training script: in the checkout, next to the package (see cmd_train)
TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "training" / "selfplay.py"
TRAIN_EXTRA_MODULES = frozenset({"torch", "stable_baselines3", "sb3_contrib", "tensorboard",
                                 "matplotlib", "tqdm", "rich", "gymnasium", "ray"})
SERVER_EXTRA_MODULES = frozenset({"fastapi", "uvicorn", "websockets", "starlette", "httpx"})


# ============================================================================ output
class Printer:
    """Prints lines, headings and tables through ``rich`` when it is importable (and ``plain``
    is off), else with ``print``. Only styling differs between the two; the words are the same."""

    def __init__(self, plain: bool = False):
        self.console = None
        if not plain:
            try:
                from rich.console import Console
            except ImportError:
                pass
            else:
                self.console = Console(highlight=False, soft_wrap=True, emoji=False)

    def line(self, text: str = "", style: str | None = None) -> None:
        if self.console is None:
            print(text)
        else:
            from rich.text import Text

            self.console.print(Text(text, style=style or ""))

    def heading(self, text: str) -> None:
        if self.console is None:
            print(f"=== {text} ===")
        else:
            self.console.rule(text, style="dim", characters="=")

    def table(self, title: str, columns: list[str], rows: list[list[str]],
              right: tuple[int, ...] = ()) -> None:
        if self.console is None:
            widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
                      for i, c in enumerate(columns)]

            def fmt(cells):
                return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

            print(title)
            if any(columns):
                print("  " + fmt(columns))
            for r in rows:
                print("  " + fmt(r))
            return
        from rich import box
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
                      show_header=any(columns), box=box.SIMPLE_HEAD)
        for i, c in enumerate(columns):
            table.add_column(c, justify="right" if i in right else "left")
        for r in rows:
            table.add_row(*r)
        self.console.print(table)


def shorten(text: str, width: int = COPY_WIDTH) -> str:
    """A player's free text (ad copy, a rationale) as one line for the terminal: whitespace
    runs become one space, every other character that does not print (a terminal's escape
    sequences, bidirectional overrides, ...) is shown as its escape, then cut to ``width``."""
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def printable(text: str) -> str:
    """``text`` with every character that does not print shown as its escape: what a file or
    another player wrote must not drive the terminal it is printed on."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def signed(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}"


# ============================================================================ play
def has_text_face(policy: Policy) -> bool:
    return type(policy).act_model is not Policy.act_model


def choose_faces(policies: dict[str, Policy], wanted: str) -> tuple[dict[str, str], list[str]]:
    """Each role plays on ``wanted`` when its policy has that face, else on the other one."""
    faces, notes = {}, []
    for role, policy in policies.items():
        has = {"tensor": policy.has_tensor_face(), "text": has_text_face(policy)}
        other = "text" if wanted == "tensor" else "tensor"
        faces[role] = wanted if has[wanted] else other
        if not has[wanted]:
            notes.append(f"{role} policy {type(policy).__name__} has no {wanted} face; it plays "
                         f"on the {other} face")
    return faces, notes


def make_policies(seed: int, fraudster: str = "reactive", investigator: str = "scripted",
                  auditor: str = "heuristic") -> dict[str, Policy]:
    names = {"fraudster": fraudster, "investigator": investigator, "auditor": auditor}
    return {role: POLICIES[role][names[role]](seed=seed) for role in ROLES}


def play_match(task_id: str, seed: int, fraudster: str = "reactive",
               investigator: str = "scripted", auditor: str = "heuristic",
               face: str = "tensor", actions: list | None = None,
               ) -> tuple[MatchResult, dict[str, str], list[str]]:
    """One match between named policies (its actions appended to ``actions``, if given, as the
    archive records them)."""
    policies = make_policies(seed, fraudster, investigator, auditor)
    faces, notes = choose_faces(policies, face)
    result = Arena().play(task_id, seed, policies, faces, actions=actions)
    return result, faces, notes


@dataclass
class AdFacts:
    """What the transcript says about one ad once the match is over."""

    ad_id: str
    slot: int
    category: str
    label: int
    proposal: bool

    @property
    def truth(self) -> str:
        return LABELS[self.label]

    @property
    def right_verdict(self) -> int:
        return CORRECT_VERDICT[self.label]


def ad_facts(ref: Referee) -> dict[str, AdFacts]:
    out = {}
    for s in np.flatnonzero(ref.present).tolist():
        out[ref.ad_id(s)] = AdFacts(ref.ad_id(s), s, CATEGORIES[ref.category_of(s)].name,
                                    ref.label_of(s), bool(ref.is_proposal[s]))
    return out


def _headline(ref: Referee, entry: dict) -> str:
    (name, value), = entry["revealed"].items()  # what the pull showed when it was made
    return f"{name} {value:.3f}"


def fraudster_line(entry: dict) -> str:
    kind = entry["action_type"]
    if kind == "propose_ad":
        return (f"  propose  {entry['ad_id']}  {entry['category']}/{entry['tactic']}  "
                f"\"{shorten(entry['ad_copy'])}\"")
    if kind == "modify_pending_ad":
        text = f"  modify   {entry['ad_id']}  {entry['edit']}"
        if entry["edit"] != "add_trust_blurb":
            text += f"  now \"{shorten(entry['ad_copy'])}\""
        return text
    if kind == "illegal":
        return f"  illegal action ({entry['reason']})  {signed(entry['reward'], 3)}"
    return f"  {kind}"


def investigator_line(ref: Referee, ads: dict[str, AdFacts], entry: dict) -> tuple[str, str | None]:
    kind = entry["action_type"]
    if kind == "investigate":
        return (f"  pull     {entry['ad_id']}  {entry['investigation_target']:<18}  "
                f"{_headline(ref, entry)}", None)
    if kind == "verdict":
        ad = ads[entry["ad_id"]]
        right = VERDICTS.index(entry["verdict"]) == ad.right_verdict
        text = (f"  verdict  {ad.ad_id}  {entry['verdict']:<8} conf {entry['confidence']:.2f}"
                f"  | truth {ad.truth:<8} {'right' if right else 'WRONG'}  "
                f"{signed(entry['reward'], 3)}")
        if entry.get("rationale"):
            text += f"  \"{shorten(entry['rationale'], 40)}\""
        return text, "green" if right else "red"
    if kind == "link_accounts":
        a, b = AD_SLOT[entry["ad_id"]], AD_SLOT[entry["linked_ad_id"]]
        ring = same_ring(ref, a, b)
        verdict = f"correct (ring_{ring})" if ring >= 0 else "wrong (not one ring)"
        return (f"  link     {entry['ad_id']} + {entry['linked_ad_id']}  {verdict}  "
                f"{signed(entry['reward'], 3)}", "green" if ring >= 0 else "red")
    if kind == "illegal":
        return f"  illegal action ({entry['reason']})  {signed(entry['reward'], 3)}", "red"
    return f"  {kind}", None


def print_transcript(out: Printer, result: MatchResult, names: dict[str, str],
                     faces: dict[str, str], notes: list[str]) -> None:
    ref = result.referee
    task = TASKS[result.task_id]
    ads = ad_facts(ref)
    out.line(f"FraudArena {result.task_id} ({task.title}), seed {result.seed}, match "
             f"{ref.match_id}", style="bold")
    out.line("  " + " | ".join(f"{role} {names[role]} ({faces[role]} face)" for role in ROLES))
    out.line(f"  {ref.n_base} organic ads over {ref.max_rounds} rounds; investigator budget "
             f"{task.action_budget} actions; up to {ref.max_proposals} fraudster proposals; "
             f"{len(ref.drawn_rings)} hidden ring(s)")
    for note in notes:
        out.line(f"  note: {note}", style="yellow")

    events = sorted([("fraudster", e) for e in ref.fraudster_log] +
                    [("investigator", e) for e in ref.investigator_log],
                    key=lambda pair: pair[1]["ts"])
    budget = task.action_budget
    for rnd in range(1, ref.round_number + 1):
        out.line()
        out.heading(f"Round {rnd}")
        arrived = [ads[ref.ad_id(s)] for s in np.flatnonzero(ref.present & ~ref.is_proposal &
                                                             (ref.arrived == rnd)).tolist()]
        if arrived:
            out.line(f"{len(arrived)} organic ad(s) arrive:", style="dim")
            for k in range(0, len(arrived), 4):
                out.line("  " + ", ".join(f"{a.ad_id} {a.category}" for a in arrived[k:k + 4]),
                         style="dim")
        previous = None
        for role, entry in (pair for pair in events if pair[1]["round_number"] == rnd):
            if role != previous:
                if role == "investigator":
                    spent = sum(1 for r, e in events if r == "investigator" and e["round_number"] == rnd
                                and e["action_type"] not in ("end_turn", "illegal"))
                    out.line(f"Investigator (budget {budget} -> {budget - spent})", style="bold")
                    budget -= spent
                else:
                    out.line("Fraudster", style="bold")
                previous = role
            if role == "fraudster":
                out.line(fraudster_line(entry))
            else:
                out.line(*investigator_line(ref, ads, entry))
    out.line()
    out.line(f"Play ends: {ref.end_reason} (round {ref.round_number} of {ref.max_rounds}, "
             f"budget left {ref.budget})", style="bold")

    record = ref.episode_record()
    auto = [v for v in record["verdicts"] if v["auto_approved"]]
    out.line()
    out.heading(f"Auto-approved at the end: {len(auto)}")
    for v in auto:
        ad = ads[v["ad_id"]]
        severity = ref.severity_of(ad.slot)
        reward = verdict_reward(VERDICTS.index("approve"), ad.label, severity)
        what = {LEGIT: "fine", FRAUD: "LEAKED fraud", ESCALATE: "missed escalation"}[ad.label]
        mark = "*" if ad.proposal else " "
        out.line(f"  {ad.ad_id}  {ad.category + mark:<29} truth {ad.truth:<8} {what:<17} "
                 f"{signed(reward, 3)}", style=None if ad.label == LEGIT else "red")
    if any(ads[v["ad_id"]].proposal for v in auto):
        out.line("  (* a fraudster proposal)", style="dim")

    out.line()
    print_audit(out, ref, names["auditor"])
    out.line()
    print_scoreboard(out, result)


def print_audit(out: Printer, ref: Referee, auditor: str) -> None:
    flags = [e for e in ref.auditor_log if e["action_type"] in ("flag_investigator",
                                                                   "flag_fraudster")]
    out.heading(f"Audit ({auditor}): {len(flags)} flag(s)")
    confirmed = set()
    for e in flags:
        true = (e["flag_type"], e["target_ad_id"]) in ref.truth_flags
        if true:
            confirmed.add((e["flag_type"], e["target_ad_id"]))
        target = e["target_ad_id"] or "(match)"
        out.line(f"  track {e['track']}  {e['flag_type']:<20} {target:<8} "
                 f"{'true ' if true else 'FALSE'}  {signed(e['reward'], 2)}",
                 style="green" if true else "red")
    n_true = sum((e["flag_type"], e["target_ad_id"]) in ref.truth_flags for e in flags)
    missed = sorted(ref.truth_flags - confirmed, key=lambda f: (f[0], f[1] or ""))
    out.line(f"  rule audit found {len(ref.truth_flags)} fault(s); flags: {n_true} true, "
             f"{len(flags) - n_true} false; missed {len(missed)}")
    if missed:
        shown = ", ".join(f"{t} {a or '(match)'}" for t, a in missed[:8])
        more = f" and {len(missed) - 8} more" if len(missed) > 8 else ""
        out.line(f"  missed: {shown}{more}", style="dim")


def print_scoreboard(out: Printer, result: MatchResult) -> None:
    ref = result.referee
    c = outcome_counts(ref)
    terms = ", ".join(f"{k} {v:.3f}" for k, v in ref.grader_terms.items())
    rows = [
        ["grader score", f"{result.grader:.3f}  ({terms})"],
        ["end", f"{result.end_reason}, {ref.round_number} round(s), {result.steps} steps"],
    ]
    for i, role in enumerate(ROLES):
        rows.append([f"{role} return", f"{signed(result.returns[role])}  (of which at the end "
                                       f"{signed(ref.terminal[i])})"])
    rows += [
        ["fraud", f"{c['fraud_caught']}/{c['fraud']} caught, {c['fraud_live']} leaked "
                  f"({c['fraud_live_auto']} auto-approved), {c['fraud_escalated']} escalated"],
        ["legit", f"{c['legit_approved']}/{c['legit']} approved, {c['legit_rejected']} wrongly "
                  f"rejected, {c['legit_escalated']} escalated"],
        ["gray area", f"{c['gray_escalated']}/{c['gray']} escalated"],
        ["escalations", f"{c['escalations']} in all"],
        ["links", f"{c['links_correct']} right, {c['links_wrong']} wrong "
                  f"({c['ring_pairs']} ring pairs)"],
        ["proposals", f"{c['proposals']}: {c['proposals_approved']} approved, "
                      f"{c['proposals_rejected']} rejected, {c['proposals_escalated']} escalated"],
    ]
    out.table("Scoreboard", ["", ""], rows)


def cmd_play(args: argparse.Namespace) -> int:
    actions: list | None = [] if args.archive else None
    if args.archive and (_is_database("play", args.archive) or
                         not _can_write("play", args.archive)):
        return 2
    result, faces, notes = play_match(args.task, args.seed, args.fraudster, args.investigator,
                                      args.auditor, args.face, actions)
    names = {"fraudster": args.fraudster, "investigator": args.investigator,
             "auditor": args.auditor}
    print_transcript(Printer(plain=args.plain), result, names, faces, notes)
    if args.archive:
        from .archive import match_record

        record = match_record(result.referee, {"seed": args.seed, "task_id": args.task}, actions)
        with open(args.archive, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
        print(f"archived match {record['match_id']} to {args.archive}")
    return 0


def _can_write(command: str, path: str) -> bool:
    """Whether ``path`` can be written, tried before any work is done (opened for appending,
    which leaves a file as it is; a file the try created is removed again); if not, says why on
    stderr."""
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        print(f"fraudarena {command}: cannot write {path}: {exc.strerror or exc}",
              file=sys.stderr)
        return False
    if not existed:
        os.remove(path)
    return True


def _is_database(command: str, path: str) -> bool:
    """Whether ``path`` is an SQLite database (a server's store), which a JSON-lines or HTML
    output would ruin; if so, says so on stderr."""
    try:
        with open(path, "rb") as f:
            database = f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
    if database:
        print(f"fraudarena {command}: {path} is a server's database, not a JSON-lines archive; "
              "write to another file (e.g. matches.jsonl)", file=sys.stderr)
    return database


def _same_file(command: str, output: str, source: str | Path) -> bool:
    """Whether writing ``output`` would overwrite ``source`` (or a data directory's database);
    if so, says so on stderr."""
    from .archive import DB_FILE

    source = Path(source)
    sources = [source, source / DB_FILE] if source.is_dir() else [source]
    out = Path(output)
    if any(out.exists() and x.exists() and os.path.samefile(out, x) for x in sources):
        print(f"fraudarena {command}: the output {output} is the archive it reads; write to "
              "another file", file=sys.stderr)
        return True
    return False


def cmd_replay(args: argparse.Namespace) -> int:
    """Play an archived match again from its seed and actions, check it reaches the archived
    state, and print it like ``play`` does."""
    from .archive import DamagedRecord, read_archive, replay, state_as_archived

    if args.html and (_same_file("replay", args.html, args.file) or
                      _is_database("replay", args.html) or not _can_write("replay", args.html)):
        return 2
    try:
        records = read_archive(args.file, args.match)
    except (OSError, sqlite3.Error) as exc:
        print(f"fraudarena replay: cannot read {getattr(exc, 'filename', None) or args.file}: "
              f"{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    if args.match is not None:
        records = [r for r in records if _match_id(r) == args.match]
    if not records:
        what = f"match {args.match!r}" if args.match else "any match"
        print(f"fraudarena replay: {args.file} holds no record of {what}", file=sys.stderr)
        return 2
    record = records[-1]
    if isinstance(record, DamagedRecord):
        print(f"fraudarena replay: match {record.match_id!r} in {args.file} cannot be played "
              f"again: {record}", file=sys.stderr)
        return 1
    try:
        ref = replay(record)
    except Exception as exc:  # noqa: BLE001 - a torn, tampered or foreign record: say which
        detail = f"{type(exc).__name__}: {exc}"
        print(f"fraudarena replay: match {record.get('match_id')!r} in {args.file} cannot be "
              f"played again ({detail}); the record is damaged or from another version",
              file=sys.stderr)
        return 1
    notes = [f"archived match {printable(record['match_id'])} ({printable(record['reason'])})"]
    same = state_as_archived(ref, record) == record["state"]
    if not same:
        notes.append("the replay does NOT reach the archived state")
    result = MatchResult(ref.task.task_id, ref.seed, float(ref.grader_score or 0.0),
                         dict(zip(ROLES, ref.totals)), dict(zip(ROLES, ref.totals)),
                         ref.end_reason or "unfinished", len(record["actions"]), ref)
    faces = {role: "tensor" if any(a["role"] == role and "action_index" in a["action"]
                                   for a in record["actions"]) else "text" for role in ROLES}
    if args.html:
        from .replay_page import replay_html

        with open(args.html, "w", encoding="utf-8") as f:
            f.write(replay_html(record))
        print(f"wrote the replay page of match {printable(record['match_id'])} to {args.html}")
    else:
        print_transcript(Printer(plain=args.plain), result, dict.fromkeys(ROLES, "remote"),
                         faces, notes)
    if not same:
        print(f"fraudarena replay: {notes[-1]}", file=sys.stderr)
    return 0 if same else 1


def _match_id(record) -> str:
    return record["match_id"] if isinstance(record, dict) else record.match_id


def cmd_export(args: argparse.Namespace) -> int:
    """Write a store's records as JSON lines."""
    from .archive import DB_FILE, read_records, write_jsonl

    source = Path(args.source)
    if not (source.is_dir() or source.name == DB_FILE):
        print(f"fraudarena export: {args.source} is neither a data directory nor its "
              f"{DB_FILE}", file=sys.stderr)
        return 2
    if source.is_dir() and not (source / DB_FILE).is_file():
        print(f"fraudarena export: {args.source} holds no archive (no {DB_FILE}); give the "
              f"directory a server ran with (--data-dir)", file=sys.stderr)
        return 2
    if _same_file("export", args.out, source) or _is_database("export", args.out):
        return 2
    try:
        n = write_jsonl(read_records(source), args.out)
    except (OSError, sqlite3.Error) as exc:
        print(f"fraudarena export: {exc}", file=sys.stderr)
        return 2
    print(f"{n} records written to {args.out}")
    return 0


# ============================================================================ evaluate
def parse_task_list(text: str) -> tuple[str, ...]:
    """Comma-separated task ids, in order; a task may repeat (``train.py`` then trains on it
    more often). Unknown ids raise an ``argparse.ArgumentTypeError`` naming the tasks there are."""
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tasks:
        raise argparse.ArgumentTypeError(f"no task given; tasks are {', '.join(TASK_IDS)}")
    if unknown := [t for t in tasks if t not in TASK_IDS]:
        raise argparse.ArgumentTypeError(f"unknown task(s) {', '.join(unknown)}; tasks are "
                                         f"{', '.join(TASK_IDS)}")
    return tasks


MAX_SEED_COUNT = 1_000_000  # a list of seeds to play: more would not finish (or fit)


def parse_seeds(text: str, repeats: bool = False) -> list[int]:
    """``"1000-1049"``, ``"7"``, or a comma-separated mix such as ``"1-5,9"`` (inclusive). A
    seed named twice is refused (a seed is one match: evaluated twice, it would count twice),
    unless ``repeats`` (for a caller that runs each seed once however often it is named)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
            else:
                lo = hi = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad seeds {text!r}: use a range like 1000-1049, a number, or a comma-separated "
                "mix") from None
        if lo < 0 or hi < lo or hi > MAX_SEED:
            raise argparse.ArgumentTypeError(f"bad seed range {part!r}: need 0 <= first <= last "
                                             "<= 2**63 - 1")
        if len(seeds) + (hi - lo + 1) > MAX_SEED_COUNT:
            raise argparse.ArgumentTypeError(f"too many seeds in {text!r}: at most "
                                             f"{MAX_SEED_COUNT:,} in all")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds given")
    if not repeats and (twice := repeated(seeds)):  # (a seed is one match: counted twice,
        # it would shrink every standard error)
        raise argparse.ArgumentTypeError(f"seeds {text!r} name {len(twice)} seed(s) more than "
                                         f"once (first: {twice[0]}); give each seed once")
    return seeds


def _seeds_label(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return ",".join(map(str, seeds[:6])) + (",..." if len(seeds) > 6 else "")


@dataclass(frozen=True)
class PolicySpec:
    """One role's policy in ``evaluate``: a policy name, or the path of a MaskablePPO checkpoint.
    ``text`` is what the user wrote; it labels the row."""

    role: str
    text: str
    path: Path | None = None  # set for a checkpoint

    @property
    def is_reference(self) -> bool:
        """A named policy of ``play``'s tables other than the scripted baseline: degenerate or
        random, so DESIGN.md section 2 wants it below the baseline."""
        return self.path is None and self.text in POLICIES[self.role] and \
            self.text != BASELINE_NAMES[self.role]


class CheckpointError(Exception):
    """A checkpoint SPEC that cannot be played: the message names the file and the fix."""


def evaluate_names(role: str) -> dict[str, Callable[..., Policy]]:
    return {**POLICIES[role], **EVALUATE_ONLY[role]}


def parse_policy_spec(role: str, text: str) -> PolicySpec:
    """A policy name of ``role`` (``evaluate_names``) or an existing checkpoint file; anything else
    is an ``argparse.ArgumentTypeError`` that says what is accepted. A path may leave out
    ``.zip``, as SB3's ``load`` does."""
    names = evaluate_names(role)
    if text in names:
        return PolicySpec(role, text)
    path = Path(text).expanduser()
    zipped = path.with_name(path.name + ".zip")
    if path.suffix == ".zip" or "/" in text or path.exists() or zipped.is_file():
        for candidate in (path, zipped):
            if candidate.is_file():
                return PolicySpec(role, text, candidate)
        if path.is_dir():
            inside = sorted(path.glob("*.zip"), key=lambda p: (role in p.name, p.name))
            raise argparse.ArgumentTypeError(
                f"{text} is a directory; give one {role} checkpoint .zip" +
                (f" in it, such as {inside[-1]}" if inside else ""))
        raise argparse.ArgumentTypeError(f"no {role} checkpoint at {text}: no such file")
    raise argparse.ArgumentTypeError(
        f"unknown {role} policy {text!r}: use one of {', '.join(names)}, or the path of a "
        "MaskablePPO checkpoint (.zip)")


def _spec_type(role: str) -> Callable[[str], PolicySpec]:
    def parse(text: str) -> PolicySpec:
        return parse_policy_spec(role, text)

    parse.__name__ = f"{role} policy"  # argparse names the type in some of its errors
    return parse


def load_checkpoint(spec: PolicySpec) -> Policy:
    """The MaskablePPO model at ``spec.path`` as a deterministic, masked policy of ``spec.role``
    (``fraudarena_env.sb3.SB3Policy``, which checks the model is the role's). Imports torch and
    SB3 (the train extra)."""
    from .sb3 import SB3Policy, WrongRoleError

    try:
        return SB3Policy.load(spec.path, spec.role)
    except WrongRoleError as exc:
        raise CheckpointError(str(exc).replace(str(spec.path), spec.text, 1)) from exc
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA_MODULES:
            raise
        raise CheckpointError(
            f"loading the checkpoint {spec.text} needs the train extra (missing module "
            f"{exc.name!r}). Install it with:\n    {install_command('train')}") from exc
    except Exception as exc:  # not a zip, not an SB3 save, a policy class that will not load...
        raise CheckpointError(f"cannot load {spec.text} as a MaskablePPO checkpoint: "
                              f"{type(exc).__name__}: {exc}") from exc


def policy_factory(spec: PolicySpec) -> Callable[[int], Policy]:
    """``seed -> policy`` for one match. A checkpoint is loaded once, here, and its (deterministic,
    stateless) policy serves every match."""
    if spec.path is not None:
        policy = load_checkpoint(spec)
        return lambda seed: policy
    make = evaluate_names(spec.role)[spec.text]
    return lambda seed: make(seed=seed)


# The rows `evaluate` shows by default besides the scripted trio (DESIGN.md section 2: none of
# them may beat the scripted baseline of its role).
DEFAULT_VARIANTS = (
    *(PolicySpec("investigator", n) for n in INVESTIGATORS if n != "scripted"),
    PolicySpec("fraudster", "gibberish"),
    PolicySpec("fraudster", "repeat"),
    PolicySpec("auditor", "flag_everything"),
)


def evaluation_rows(args: argparse.Namespace) -> list[PolicySpec | None]:
    """Per row, the spec that replaces one role of the scripted trio; the first row, ``None``, is
    the trio itself."""
    chosen = [spec for role in ROLES for spec in (getattr(args, role) or [])
              if spec.text != BASELINE_NAMES[role]]
    picked = any(getattr(args, role) for role in ROLES)
    return [None, *(dict.fromkeys(chosen) if picked else DEFAULT_VARIANTS)]


@dataclass
class EvaluationRow:
    """One row of ``evaluate``: a task, the policies, and the :func:`~fraudarena_env.arena.
    match_metrics` of one match per seed."""

    task: str
    varied: PolicySpec | None
    policies: dict[str, str]
    per_match: list[dict[str, float]]

    @property
    def mean(self) -> dict[str, float]:
        return {k: float(np.mean([m[k] for m in self.per_match])) for k in self.per_match[0]}

    @property
    def std(self) -> dict[str, float]:
        """Population standard deviation over seeds (0 for a single seed)."""
        return {k: float(np.std([m[k] for m in self.per_match])) for k in self.per_match[0]}

    @property
    def label(self) -> str:
        return "scripted trio" if self.varied is None else f"{self.varied.role}={self.varied.text}"


def progress_bar(total: int, enabled: bool, desc: str = "evaluate", unit: str = "match"):
    """A tqdm bar of ``total`` steps, or None when disabled or tqdm is not installed (it comes
    with the train extra). The training scripts' measurements use it too."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, desc=desc, disable=None, leave=False)


def _ticking(seeds, bar):
    for s in seeds:
        yield s
        if bar is not None:
            bar.update(1)


def run_evaluation(tasks: list[str], seeds: list[int], rows: list[PolicySpec | None],
                   bar=None) -> list[EvaluationRow]:
    """Every row on every task, one match per seed. Raises ``CheckpointError`` before playing
    when a checkpoint will not load."""
    factories = {spec: policy_factory(spec) for spec in rows if spec is not None}
    trio = {role: policy_factory(PolicySpec(role, name)) for role, name in BASELINE_NAMES.items()}
    table = []
    for task in tasks:
        for spec in rows:
            makers, names = dict(trio), dict(BASELINE_NAMES)
            if spec is not None:
                makers[spec.role], names[spec.role] = factories[spec], spec.text

            def make(seed, makers=makers):
                return {role: m(seed) for role, m in makers.items()}

            table.append(EvaluationRow(task, spec, names,
                                       evaluate_matches(task, _ticking(seeds, bar), make)))
    return table


def evaluation_json(rows: list[EvaluationRow], seeds: list[int]) -> dict:
    """``evaluate --json``: per task, per row, the mean and std over seeds of every metric."""
    tasks: dict[str, list[dict]] = {}
    for row in rows:
        tasks.setdefault(row.task, []).append({
            "row": row.label, "varied_role": row.varied.role if row.varied else None,
            "policies": row.policies, "n_seeds": len(row.per_match),
            "mean": row.mean, "std": row.std})
    return {"n_seeds": len(seeds), "seeds": seeds, "scripted": dict(BASELINE_NAMES),
            "tasks": tasks}


def cmd_evaluate(args: argparse.Namespace) -> int:
    tasks = list(TASK_IDS) if "all" in args.task else list(dict.fromkeys(args.task))
    seeds = args.seeds
    if args.suite == "skill":
        if args.json:
            print("fraudarena evaluate: --json applies to the baselines suite only",
                  file=sys.stderr)
            return 2
        given = [f"--{role}" for role in ROLES if getattr(args, role, None)]
        if given:
            print(f"fraudarena evaluate: --suite skill plays its own players; {', '.join(given)} "
                  "applies to the baselines suite only (drop --suite skill to evaluate it)",
                  file=sys.stderr)
            return 2
        from .skill import skill_report

        bar = progress_bar(len(tasks), not args.no_progress)
        try:
            report = skill_report(seeds, tasks, progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
        print(f"Does skill pay? Mean over {len(seeds)} seed(s) ({_seeds_label(seeds)}); "
              "opponents ReactiveFraudster and HeuristicAuditor unless the row changes them.\n")
        print(report)
        return 0
    specs = evaluation_rows(args)
    bar = progress_bar(len(tasks) * len(specs) * len(seeds), not args.no_progress)
    try:
        rows = run_evaluation(tasks, seeds, specs, bar)
    except CheckpointError as exc:
        print(f"fraudarena evaluate: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(evaluation_json(rows, seeds), indent=2))
        return 0
    print(f"Mean over {len(seeds)} seed(s) ({_seeds_label(seeds)}); each policy on its tensor "
          "face where it has one. Rows change one role from the scripted trio "
          f"({', '.join(f'{r} {n}' for r, n in BASELINE_NAMES.items())}).")
    print()
    print("| task | policies | grader | fraudster | investigator | auditor | fraud live | "
          "legit rejected | steps | vs scripted |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    reference = None
    for row in rows:
        s = row.mean
        if row.varied is None:
            reference = s
        print(f"| {row.task} | {row.label} | {s['grader']:.3f} | {s['fraudster']:+.2f} | "
              f"{s['investigator']:+.2f} | {s['auditor']:+.2f} | {s['fraud_live']:.0%} | "
              f"{s['legit_rejected']:.0%} | {s['steps']:.1f} | "
              f"{_versus(row.varied, s, reference)} |")
    print()
    print("fraud live: the share of fraud ads that ended approved; legit rejected: the share of "
          "legit ads rejected. vs scripted: an investigator row is 'below' when both its mean "
          "grader and its mean investigator return are below the scripted trio's; a fraudster or "
          "auditor row, when that role's mean return is. A degenerate or random policy that is "
          "not below is a fault of the game's balance, shown in bold.")
    return 0


def _versus(spec: PolicySpec | None, stats: dict, reference: dict | None) -> str:
    if spec is None or reference is None:
        return "reference"
    if spec.role == "investigator":
        below = stats["grader"] < reference["grader"] and \
            stats["investigator"] < reference["investigator"]
    else:
        below = stats[spec.role] < reference[spec.role]
    if below:
        return "below"
    return "**NOT below**" if spec.is_reference else "not below"


# ============================================================================ bench, train
def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    bench.run(args)
    return 0


TORCH_CPU = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"


def install_command(extra: str) -> str:
    """How to install ``extra`` (the training extra's torch first, its CPU build: PyPI's Linux
    wheel pulls several GB of CUDA libraries)."""
    torch = f"{TORCH_CPU} && " if extra == "train" else ""
    return f"{torch}pip install -e \".[{extra}]\""


def delegate(command: str, extra: str, extra_modules: frozenset[str], load: Callable[[], Any],
             argv: list[str]) -> int:
    """Hand ``argv`` to ``load().main``, where ``load`` imports code that needs an optional
    extra; a missing extra is reported with the command that installs it."""
    try:
        target = load()
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in extra_modules:
            print(f"fraudarena {command} needs the {extra} extra (missing module {exc.name!r}). "
                  f"Install it with:\n    {install_command(extra)}", file=sys.stderr)
        else:
            print(f"fraudarena {command} could not be imported: {exc}", file=sys.stderr)
        return 1
    code = target.main(argv)
    return code if isinstance(code, int) else 0


def load_script(path: Path, name: str) -> types.ModuleType:
    """Import the script at ``path`` as module ``name`` (registered in ``sys.modules`` first, as
    dataclasses and pickling look a class's module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def cmd_train(argv: list[str]) -> int:
    """Run ``main(argv)`` of the training script, ``training/selfplay.py`` of this checkout.

    The script is not part of the installed package (researchers copy and edit it, CleanRL
    style), so ``fraudarena train`` needs a checkout installed with ``pip install -e``."""
    if not TRAIN_SCRIPT.is_file():
        print(f"fraudarena train runs training/selfplay.py from a checkout of the repository, "
              f"and there is none at {TRAIN_SCRIPT.parents[1]}. Clone the repository and install "
              f"it with:\n    {install_command('train')}",
              file=sys.stderr)
        return 1
    return delegate("train", "train", TRAIN_EXTRA_MODULES,
                    lambda: load_script(TRAIN_SCRIPT, "fraudarena_selfplay"), argv)


def cmd_serve(argv: list[str]) -> int:
    """Hand the arguments to ``fraudarena_env.server.main`` (the server extra)."""
    return delegate("serve", "server", SERVER_EXTRA_MODULES,
                    lambda: importlib.import_module(f"{__package__}.server"), argv)


# ============================================================================ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudarena", description="FraudArena: a three-role adversarial ad-fraud game "
        "(fraudster, investigator, auditor) for multi-agent RL.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    play = sub.add_parser("play", help="play one match and print its transcript",
                          description="Play one seeded match between the chosen policies and "
                          "print it round by round, then the audit and a scoreboard.")
    play.add_argument("--task", choices=TASK_IDS, default="task_3", help="default: task_3")
    play.add_argument("--seed", type=_seed, default=7, help="match seed (default 7)")
    for role in ROLES:
        play.add_argument(f"--{role}", choices=list(POLICIES[role]),
                          default=BASELINE_NAMES[role],
                          help=f"{role} policy (default: {BASELINE_NAMES[role]})")
    play.add_argument("--face", choices=("tensor", "text"), default="tensor",
                      help="the face the policies act on: action indices or pydantic action "
                      "models (a policy without that face uses its other one; default tensor)")
    play.add_argument("--plain", action="store_true",
                      help="plain text, even when rich is installed")
    play.add_argument("--archive", metavar="FILE", default=None,
                      help="also append the match's record to a JSON-lines archive (the "
                      "format of `fraudarena export`), for `fraudarena replay`")
    play.set_defaults(func=cmd_play)

    rp = sub.add_parser("replay", help="re-render a match from an archive, as text or an HTML "
                        "page",
                        description="Replay a match archived by `fraudarena serve` (its data "
                        "directory, or a JSON-lines export of it) or by `fraudarena play "
                        "--archive`, check that it reaches the archived final state, and print "
                        "its transcript, or with --html write one self-contained page of it. "
                        "Exit status 1 when it does not reach the archived state.")
    rp.add_argument("file", help="a server's data directory, its fraudarena.sqlite3, or a "
                    "JSON-lines file (fraudarena export, fraudarena play --archive)")
    rp.add_argument("--match", default=None, help="the match id (default: the last record)")
    rp.add_argument("--plain", action="store_true",
                    help="plain text, even when rich is installed")
    rp.add_argument("--html", metavar="OUT.html", default=None,
                    help="write the match as one self-contained HTML page (the queue round by "
                    "round, evidence, verdicts, links and rings, rewards over time) instead of "
                    "printing it")
    rp.set_defaults(func=cmd_replay)

    ex = sub.add_parser("export", help="write a server's archive as JSON lines",
                        description="Write every archived match of a server's data directory "
                        "(or its fraudarena.sqlite3) to a JSON-lines file, one record a line, "
                        "oldest first; `fraudarena replay` reads it. Safe while the server runs.")
    ex.add_argument("source", help="the data directory or its fraudarena.sqlite3")
    ex.add_argument("out", help="the .jsonl file to write (replaced whole)")
    ex.set_defaults(func=cmd_export)

    ev = sub.add_parser("evaluate", help="evaluation table: scripted vs degenerate policies "
                        "or checkpoints",
                        description="Mean grader, each role's mean return, the share of fraud "
                        "that went live and of legit ads rejected, and mean steps over the seeds, "
                        "per task: the scripted trio, then one row per policy that replaces one "
                        "role. By default the rows are every degenerate investigator, the "
                        "gibberish and repeat fraudsters and the flag-everything auditor; "
                        "--investigator/--fraudster/--auditor pick rows instead, each SPEC a "
                        "policy name or the path of a MaskablePPO checkpoint (.zip, needs the "
                        "train extra). --json prints the mean and std of every metric instead.")
    ev.add_argument("--task", nargs="+", choices=("all", *TASK_IDS), default=["all"],
                    metavar="TASK", help=f"all (default) or one or more of {', '.join(TASK_IDS)}")
    ev.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1000-1049"),
                    help="seeds: a range such as 1000-1049 (default), a number, or a "
                    "comma-separated mix")
    for role in ROLES:
        ev.add_argument(f"--{role}", nargs="+", type=_spec_type(role), metavar="SPEC",
                        help=f"{role} rows to show: {', '.join(evaluate_names(role))}, or the "
                        "path of a MaskablePPO checkpoint")
    ev.add_argument("--suite", choices=("baselines", "skill"), default="baselines",
                    help="baselines (default): the table above; skill: per task, every blind "
                    "reference investigator against the scripted one and an oracle (evidence "
                    "premium, headroom), the fraudster table (never proposing, each single "
                    "tactic, reactive), information value and camouflage")
    ev.add_argument("--json", action="store_true",
                    help="print one JSON document instead of the table: per task and row, the "
                    "policies, n_seeds, and the mean and std over seeds of grader, each role's "
                    "return, fraud_live (share; _count), legit_rejected (share; _count), "
                    "escalations, links_correct, links_wrong and steps")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)

    from . import bench

    be = sub.add_parser("bench", help="env and referee speed benchmarks",
                        description=bench.__doc__.split("\n\n")[0])
    bench.add_arguments(be)
    be.set_defaults(func=cmd_bench)

    sub.add_parser("train", add_help=False,
                   help="train policies (needs the training extra: pip install -e \".[train]\"); "
                   "arguments go to training/selfplay.py")
    sub.add_parser("serve", add_help=False,
                   help="serve the WebSocket adapter (needs the server extra: pip install -e "
                   "\".[server]\"); arguments go to fraudarena_env.server")
    return parser


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is from 0 to 2**63 - 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":  # everything after `train` belongs to the trainer
        return cmd_train(argv[1:])
    if argv and argv[0] == "serve":  # ... and after `serve`, to the server
        return cmd_serve(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `fraudarena play | head`: stop quietly, like other tools
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
