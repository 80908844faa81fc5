"""The text face is told from the match's typed events, and only when it is asked.

The rules record events (``rules.events``) and build no text; ``faces.narration`` turns each
event into its role's log entry and feedback line. A tensor match (the env, the vector env)
records no events and builds no text; a text request on the env replays the match into events,
and what it shows equals what a referee recording from the start shows.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fraudarena_env import fraudarena_v0
from fraudarena_env.faces import narration
from fraudarena_env.faces.encoding import apply_index
from fraudarena_env.referee import Referee
from fraudarena_env.rules import events as ev
from fraudarena_env.rules import scoring
from fraudarena_env.rules.catalog import ROLES, TASK_IDS
from fraudarena_env.vector import VectorFraudArena

# What builds a player's text: patched to raise, a tensor match must never call them.
TEXT_BUILDERS = ("evidence_text", "evidence_fields", "headline", "tell", "recorded_events",
                 "narration", "feedback", "logs", "proposal_log")


def _no_text(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the tensor path built text")

    for name, module in list(sys.modules.items()):
        if not name.startswith("fraudarena_env") or module is None:
            continue
        for builder in TEXT_BUILDERS:
            if callable(getattr(module, builder, None)):
                monkeypatch.setattr(module, builder, refuse)
    monkeypatch.setattr(narration.Narration, "sync", refuse)


def _masked_random(env, rng: np.random.Generator, steps: int | None = None) -> int:
    """Play masked-random indices until the match ends (or ``steps`` steps); the steps taken."""
    taken = 0
    while not env.unwrapped.match_over and (steps is None or taken < steps):
        obs, _, _, _, _ = env.last()
        legal = np.flatnonzero(obs["action_mask"])
        env.step(int(legal[rng.integers(len(legal))]))
        taken += 1
    return taken


# ----------------------------------------------------------------------------- no text
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_a_tensor_match_on_the_env_builds_no_events_and_no_text(monkeypatch, task_id):
    _no_text(monkeypatch)
    env = fraudarena_v0.env(task_id=task_id)
    for seed in range(3):
        env.reset(seed=seed)
        _masked_random(env, np.random.default_rng(seed))
        ref = env.unwrapped.referee
        assert ref.done
        assert ref.events == [] and not ref.recording
        assert ref.narration is None


def test_the_vector_env_builds_no_events_and_no_text(monkeypatch):
    _no_text(monkeypatch)
    venv = VectorFraudArena(8, task_id="task_3")
    batch = venv.reset(seed=0)
    for _ in range(400):  # several matches per env, auto-resets included
        batch = venv.step(venv.sample_actions(batch.action_mask))
    for ref in venv.referees:
        assert ref.events == [] and ref.played is None and ref.narration is None


def test_a_referee_that_records_nothing_says_it_has_no_text():
    ref = Referee(record="nothing")
    ref.reset_match(seed=0)
    with pytest.raises(RuntimeError, match="records nothing"):
        ref.build_investigator_observation()


# ----------------------------------------------------------------------------- replay
@pytest.mark.parametrize("mode", ["raise", "penalize"])
def test_text_asked_mid_match_on_the_env_equals_text_recorded_from_the_start(mode):
    env = fraudarena_v0.env(task_id="task_3", illegal_action=mode)
    for seed in range(4):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        played = []  # (role, index) in order, illegal ones included
        for agent in env.agent_iter():
            obs, _, terminated, truncated, _ = env.last()
            if terminated or truncated:
                env.step(None)
                continue
            mask = obs["action_mask"]
            legal = np.flatnonzero(mask)
            index = int(rng.integers(len(mask)) if mode == "penalize" and rng.random() < 0.2
                        else legal[rng.integers(len(legal))])
            env.step(index)
            played.append((agent, index))
            if len(played) == 25:  # the first text request replays the match so far
                env.unwrapped.role_observation("investigator")
        ref = env.unwrapped.referee
        assert ref.recording and ref.played is None
        twin = Referee(illegal_action=mode)
        twin.reset_match(seed=seed, task_id="task_3")
        for role, index in played:  # penalize mode: an illegal index is charged, as on the env
            apply_index(twin, role, index)
        assert ref.state.model_dump_json() == twin.state.model_dump_json()
        for role in ROLES:
            assert env.unwrapped.role_observation(role).model_dump_json() == \
                getattr(twin, f"build_{role}_observation")().model_dump_json()


def test_a_replayed_match_records_events_from_then_on_until_the_next_reset():
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=5)
    _masked_random(env, np.random.default_rng(5), steps=10)
    ref = env.unwrapped.referee
    assert ref.events == [] and len(ref.played) == 10
    told = sum(len(log) for log in narration.logs(ref))
    assert len(ref.events) == told == 10 and ref.played is None
    taken = _masked_random(env, np.random.default_rng(6), steps=5)
    assert len(ref.events) == 10 + taken
    env.reset(seed=6)
    assert not ref.recording and ref.events == [] and ref.played == []


# ----------------------------------------------------------------------------- feedback
def _proposed_ad(ref: Referee) -> str:
    return ref.state.fraudster_proposals[-1]["ad_id"]


def _scripted_match() -> list[tuple[type, str, str]]:
    """A penalize-mode text match with one action of every kind: (the event recorded, the
    acting role's feedback, what it should be)."""
    ref = Referee(illegal_action="penalize")
    ref.reset_match(seed=3, task_id="task_1")
    seen = []

    def act(role: str, action: dict, expected) -> None:
        obs = getattr(ref, f"step_as_{role}")(action)
        seen.append((type(ref.events[-1]), obs.feedback, expected() if callable(expected)
                     else expected))

    act("fraudster", {"action_type": "propose_ad", "category": "ecommerce",
                      "ad_copy": "zxqvt brrkpl mnnrgh qqzzkt vvbbnp trrpsk"},
        lambda: f"proposed {_proposed_ad(ref)}")
    gib = _proposed_ad(ref)
    act("fraudster", {"action_type": "modify_pending_ad", "slot_index": 0,
                      "edit": "add_trust_blurb"}, f"modified {gib}")
    act("fraudster", {"action_type": "end_turn"}, "turn ended")
    a, b = [x for x in ref.build_investigator_observation().available_ads if x != gib][:2]
    act("investigator", {"action_type": "investigate", "ad_id": a,
                         "investigation_target": "landing_page"},
        f"pulled landing_page for {a}")
    act("investigator", {"action_type": "link_accounts", "ad_id": a, "linked_ad_id": b},
        f"linked {a} and {b}")
    act("investigator", {"action_type": "verdict", "ad_id": b, "verdict": "approve",
                         "confidence": 0.9}, f"approve {b}")
    act("investigator", {"action_type": "verdict", "ad_id": "ad_999", "verdict": "reject"},
        lambda: f"illegal action ({ref.events[-1].reason}); charged {scoring.ILLEGAL_PENALTY}")
    act("investigator", {"action_type": "end_turn"}, "turn ended")
    act("fraudster", {"action_type": "commit_final"},
        "committed: no more proposals this match")
    while ref.phase == "investigator_turn":
        ref.step_as_investigator({"action_type": "end_turn"})
    assert ("missing_citation", b) in ref.truth_flags and ("gibberish", a) not in ref.truth_flags
    flag_b = {"action_type": "flag_investigator", "flag_type": "missing_citation",
              "target_ad_id": b}
    act("auditor", flag_b, f"flag missing_citation on {b}: confirmed by the rule audit")
    act("auditor", {"action_type": "flag_fraudster", "flag_type": "gibberish",
                    "target_ad_id": a}, f"flag gibberish on {a}: not supported by the rule audit")
    act("auditor", flag_b, f"flag missing_citation on {b} was already raised; it counts once")
    act("auditor", {"action_type": "flag_fraudster", "flag_type": "gibberish"},
        "flag gibberish on the match: not supported by the rule audit")
    act("auditor", {"action_type": "submit_audit_report"}, "report submitted; the match is over")
    return seen


SCRIPTED = _scripted_match()
KINDS = (ev.Proposed, ev.Modified, ev.TurnEnded, ev.Pulled, ev.Linked, ev.Decided, ev.Refused,
         ev.TurnEnded, ev.Committed, ev.Flagged, ev.Flagged, ev.Flagged, ev.Flagged, ev.Submitted)


@pytest.mark.parametrize("step", range(len(KINDS)),
                         ids=[f"{k.__name__}-{i}" for i, k in enumerate(KINDS)])
def test_each_kind_of_event_is_told_as_its_feedback_line(step):
    kind, feedback, expected = SCRIPTED[step]
    assert kind is KINDS[step]
    assert feedback == expected


def test_every_kind_of_event_is_told():
    assert set(narration.NARRATE) == {k for k in vars(ev).values()
                                      if isinstance(k, type) and k is not ev.Stamp and
                                      hasattr(k, "_fields") and k._fields[:1] == ("at",)}
    assert set(KINDS) == set(narration.NARRATE)


def test_a_pull_is_logged_in_the_seed_format_with_what_it_showed_then():
    ref = Referee()
    ref.reset_match(seed=1, task_id="task_1")
    ref.step_as_fraudster({"action_type": "end_turn"})
    ad = ref.build_investigator_observation().available_ads[0]
    obs = ref.step_as_investigator({"action_type": "investigate", "ad_id": ad,
                                    "investigation_target": "payment_method"})
    entry = ref.investigator_log[-1]
    assert list(entry) == ["ts", "round_number", "phase", "action_type", "ad_id",
                           "investigation_target", "verdict", "confidence", "rationale",
                           "linked_ad_id", "link_reason", "findings_excerpt", "reward",
                           "revealed"]
    assert entry["findings_excerpt"].startswith("[payment_method] chargeback_rate=")
    assert f"{ad} {entry['findings_excerpt']}" in obs.investigation_findings
    assert entry["revealed"] == {"chargeback_rate": obs.evidence_ledger[ad]["chargeback_rate"]}


@pytest.mark.parametrize("record", ["events", "ops"])
def test_an_illegal_action_that_ended_the_match_is_told_as_its_end(record):
    """Recorded as it happened or replayed from the ops played: the same line and log entry."""
    ref = Referee(record=record)
    ref.reset_match(seed=1, task_id="task_1")
    ref.end_on_illegal("fraudster", "bad", "a reason", -1.5)
    assert narration.feedback(ref, 0) == \
        "illegal action (a reason); charged -1.5; the match is over"
    entry = narration.logs(ref)[0][-1]
    assert (entry["action_type"], entry["reason"], entry["reward"]) == \
        ("illegal", "a reason", -1.5)


def test_an_illegal_ending_on_the_env_builds_no_text(monkeypatch):
    _no_text(monkeypatch)
    env = fraudarena_v0.env(task_id="task_1", illegal_action="terminate")
    env.reset(seed=0)
    env.step(int(np.flatnonzero(env.observe("fraudster")["action_mask"] == 0)[0]))
    assert env.unwrapped.referee.done and env.unwrapped.referee.played[-1].charge == -1.0
