"""The seed protocol's own clients finish every match (issue 17, part 6).

The lineage's driver stops a match at its first error reply, and its rules answer some moves with
a penalty where ours refuse them: a verdict on an ad id that is not in the queue (its scripted
investigator passes with ``__noop__``), and any number of auditor flags (its scripted auditor
raises one per finding, repeats included, past our cap of 48 auditor actions). On the seed
protocol the server answers those as the seed did, charged and used up (reset's
``illegal_action``, ``penalize`` by default); ``"illegal_action": "raise"`` keeps the strict
refusal. The clients here send exactly the seed's shapes (``seed_protocol``), through the
server's message handler.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")

import seed_protocol  # noqa: E402

from fraudarena_env.archive import Archive, replay, state_as_archived  # noqa: E402
from fraudarena_env.rules.catalog import MAX_AUDITOR_ACTIONS, PHASE_ROLE, ROLES, TASK_IDS  # noqa: E402
from fraudarena_env.rules.scoring import ILLEGAL_PENALTY  # noqa: E402
from fraudarena_env.server import MAX_PENALTIES, Handler, MatchPool, ServerConfig  # noqa: E402


def new_pool() -> MatchPool:
    return MatchPool(ServerConfig(max_matches=8), Archive(None))


class Seats:
    """Three sockets' handlers on one match, spoken to as the seed's client speaks (``sockets``:
    real ones of a test client instead)."""

    def __init__(self, pool: MatchPool, reset: dict, sockets: dict | None = None):
        self.pool = pool
        self.handlers = {role: Handler(pool, role) for role in ROLES}
        self.sockets = sockets
        data = self.ask("fraudster", "reset", reset)
        self.match_id = data["match_id"]
        for role in ("investigator", "auditor"):
            self.ask(role, "join", {"match_id": self.match_id})
        self.phase = data["phase"]

    def ask(self, role: str, kind: str, data: dict | None = None) -> dict:
        message = {"type": kind, "data": data or {}}
        if self.sockets is None:
            reply = json.loads(self.handlers[role].handle(json.dumps(message)))
        else:
            self.sockets[role].send_json(message)
            reply = self.sockets[role].receive_json()
        if reply["type"] == "error":  # the seed's driver stops here
            raise AssertionError(f"{role} {kind} {data} answered {reply['data']}")
        return reply["data"]

    def observe(self, role: str):
        return seed_protocol.OBSERVATIONS[role].model_validate(self.ask(role, "obs"))

    @property
    def entry(self):
        return self.pool.get(self.match_id)


# The sweep's resets: the defaults, and a fraudster with one proposal, which leaves the
# investigator turns with nothing to review (where the seed's investigator sends __noop__).
SWEEP_KNOBS = ({}, {"max_proposals": 1})


def play_seed_sweep_match(task_id: str, fraudster: str, seed: int, pool=None, sockets=None,
                          **knobs) -> dict:
    """One match of the seed's sweep; returns what it sent and how it ended."""
    pool = pool or new_pool()
    seats = Seats(pool, {"seed": seed, "task_id": task_id, **knobs}, sockets)
    policies = seed_protocol.seed_sweep_policies(fraudster, seed)
    sent = []
    while seats.phase != "done":
        role = PHASE_ROLE[seats.phase]
        action = policies[role].act(seats.observe(role))
        data = seats.ask(role, "step", action)
        seed_protocol.OBSERVATIONS[role].model_validate(data)
        sent.append((role, action))
        seats.phase = data["phase"]
        assert len(sent) < 3000, "the match did not end"
    state = seed_protocol.RefereeState.model_validate(seats.ask("auditor", "state"))
    record = pool.archive.get(seats.match_id)
    return {"sent": sent, "state": state, "record": record}


def test_the_seed_clients_finish_matches_over_real_sockets():
    """The same clients through the whole server (transport, rate limits and all): a match that
    passes with __noop__ and one that flags past the cap."""
    from fastapi.testclient import TestClient

    from fraudarena_env.server import create_app

    with TestClient(create_app(data_dir=None)) as client:
        for task_id, fraudster, seed, knobs in (("task_1", "scripted", 2, SWEEP_KNOBS[1]),
                                                ("task_3", "gibberish", 2, SWEEP_KNOBS[0])):
            with client.websocket_connect("/ws/fraudster") as fr, \
                    client.websocket_connect("/ws/investigator") as inv, \
                    client.websocket_connect("/ws/auditor") as aud:
                sockets = {"fraudster": fr, "investigator": inv, "auditor": aud}
                played = play_seed_sweep_match(task_id, fraudster, seed,
                                               client.app.state.pool, sockets, **knobs)
            assert played["state"].phase == "done"
            assert noops(played["sent"]) or flags(played["sent"]) > MAX_AUDITOR_ACTIONS


def noops(sent) -> int:
    return sum(a.get("ad_id") == "__noop__" for _, a in sent)


def flags(sent) -> int:
    return sum(r == "auditor" and a["action_type"].startswith("flag") for r, a in sent)


@pytest.mark.parametrize("task_id", TASK_IDS)
@pytest.mark.parametrize("fraudster", sorted(seed_protocol.SEED_FRAUDSTERS))
def test_the_seed_clients_finish_every_match(task_id, fraudster):
    for seed, knobs in zip((1, 2), SWEEP_KNOBS):
        played = play_seed_sweep_match(task_id, fraudster, seed, **knobs)
        assert played["state"].phase == "done" and played["state"].grader_score is not None
        record = played["record"]  # and the archive replays what the server answered
        assert state_as_archived(replay(record), record) == record["state"]


@pytest.mark.slow
def test_the_seed_clients_finish_every_match_of_the_big_sweep():
    """4 tasks x 3 fraudsters x 60 seeds, the sweep that finished 710 of 720 matches before."""
    pool = new_pool()
    seen = {"noop": 0, "past_cap": 0}
    for task_id in TASK_IDS:
        for fraudster in sorted(seed_protocol.SEED_FRAUDSTERS):
            for seed in range(100, 160):
                knobs = SWEEP_KNOBS[seed % len(SWEEP_KNOBS)]
                played = play_seed_sweep_match(task_id, fraudster, seed, pool, **knobs)
                assert played["state"].phase == "done"
                seen["noop"] += noops(played["sent"]) > 0
                seen["past_cap"] += flags(played["sent"]) > MAX_AUDITOR_ACTIONS
    assert seen["noop"] > 0 and seen["past_cap"] > 0, seen


def test_the_sweep_meets_both_of_the_seeds_penalized_moves():
    """The default sweep is not vacuous: some of its matches pass with __noop__ and some flag
    past the cap (else the tests above would pass on a server that still refused them)."""
    runs = [play_seed_sweep_match(task, fraudster, seed, **knobs)["sent"]
            for task, fraudster, seed, knobs in (("task_1", "scripted", 2, SWEEP_KNOBS[1]),
                                                 ("task_3", "gibberish", 2, SWEEP_KNOBS[0]))]
    assert any(noops(sent) for sent in runs)
    assert any(flags(sent) > MAX_AUDITOR_ACTIONS for sent in runs)


def noop_match(illegal_action: str | None):
    pool = new_pool()
    reset = {"seed": 4, "task_id": "task_1", "max_proposals": 1}
    if illegal_action:
        reset["illegal_action"] = illegal_action
    seats = Seats(pool, reset)
    seats.ask("fraudster", "step", {"action_type": "commit_final", "metadata": {}})
    while seats.observe("investigator").available_ads:  # rule on every ad
        ad = seats.observe("investigator").available_ads[0]
        data = seats.ask("investigator", "step", {"action_type": "verdict", "ad_id": ad,
                                                  "verdict": "approve", "confidence": 0.6,
                                                  "metadata": {}})
        if data["phase"] != "investigator_turn":
            break
    return pool, seats


NOOP = {"action_type": "verdict", "ad_id": "__noop__", "verdict": "approve", "confidence": 0.5,
        "metadata": {}}


def test_a_noop_verdict_is_charged_and_uses_one_action():
    pool, seats = noop_match(None)
    obs = seats.observe("investigator")
    if seats.phase == "done" or obs.phase != "investigator_turn":
        pytest.skip("the match ended with the last verdict")
    before = seats.entry.referee.state
    left = obs.actions_left_this_turn
    after = seats.ask("investigator", "step", NOOP)
    assert after["reward"] == pytest.approx(before.investigator_reward + ILLEGAL_PENALTY)
    assert "__noop__" in after["feedback"]
    assert after["actions_left_this_turn"] == left - 1 or after["phase"] != "investigator_turn"
    state = seats.entry.referee.state
    assert state.step_count == before.step_count + 1
    assert state.investigator_state == before.investigator_state  # nothing else changed


def test_a_strict_match_refuses_a_noop_verdict_and_stays_unchanged():
    pool, seats = noop_match("raise")
    before = seats.entry.referee.state.model_dump(mode="json")
    reply = json.loads(seats.handlers["investigator"].handle(json.dumps({"type": "step",
                                                                         "data": NOOP})))
    assert reply["type"] == "error" and reply["data"]["code"] == "execution_error"
    assert "__noop__" in reply["data"]["message"]
    assert seats.entry.referee.state.model_dump(mode="json") == before


def test_a_refused_illegal_action_mode_creates_nothing():
    pool = new_pool()
    handler = Handler(pool, "fraudster")
    reply = json.loads(handler.handle(json.dumps({"type": "reset",
                                                  "data": {"illegal_action": "ignore"}})))
    assert reply["data"]["code"] == "reset_error" and "illegal_action" in reply["data"]["message"]
    assert len(pool) == 0


def audit_phase(pool, illegal_action=None):
    reset = {"seed": 6, "task_id": "task_1", "max_rounds": 1}
    if illegal_action:
        reset["illegal_action"] = illegal_action
    seats = Seats(pool, reset)
    seats.ask("fraudster", "step", {"action_type": "commit_final", "metadata": {}})
    while seats.observe("auditor").phase != "audit_phase":
        seats.ask("investigator", "step", {"action_type": "end_turn", "metadata": {}})
    return seats


FLAG = {"action_type": "flag_investigator", "flag_type": "miscalibration", "severity": 0.5,
        "metadata": {}}


def test_flags_past_the_cap_are_charged_and_the_report_still_ends_the_match():
    pool = new_pool()
    seats = audit_phase(pool)
    rewards = [seats.ask("auditor", "step", FLAG)["reward"] for _ in range(MAX_AUDITOR_ACTIONS
                                                                            + 12)]
    past = [b - a for a, b in zip(rewards[MAX_AUDITOR_ACTIONS - 1:],
                                  rewards[MAX_AUDITOR_ACTIONS:])]
    assert past == pytest.approx([ILLEGAL_PENALTY] * 12)  # repeats within the cap earn 0
    assert seats.ask("auditor", "step", {"action_type": "submit_audit_report",
                                         "metadata": {}})["done"]
    record = pool.archive.get(seats.match_id)
    assert record["illegal_action"] == "penalize"
    assert state_as_archived(replay(record), record) == record["state"]


def test_a_match_charges_at_most_max_penalties_then_refuses():
    """The auditor has no turn end, so charged flags alone could keep a match (and its journal)
    growing for ever."""
    pool = new_pool()
    seats = audit_phase(pool)
    for _ in range(MAX_AUDITOR_ACTIONS + MAX_PENALTIES):
        seats.ask("auditor", "step", FLAG)
    before = seats.entry.referee.state.model_dump(mode="json")
    reply = json.loads(seats.handlers["auditor"].handle(json.dumps({"type": "step",
                                                                    "data": FLAG})))
    assert reply["data"]["code"] == "execution_error"
    assert str(MAX_PENALTIES) in reply["data"]["message"]
    assert seats.entry.referee.state.model_dump(mode="json") == before
    assert seats.ask("auditor", "step", {"action_type": "submit_audit_report",
                                         "metadata": {}})["done"]


def test_an_action_index_the_mask_refuses_is_refused_even_when_text_is_charged():
    pool = new_pool()
    seats = audit_phase(pool)
    for _ in range(MAX_AUDITOR_ACTIONS):
        seats.ask("auditor", "step", FLAG)
    from fraudarena_env.faces.encoding import N_ACTIONS, Observer

    vector, mask = Observer("auditor").observe(seats.entry.referee)
    masked = next(k for k in range(N_ACTIONS["auditor"]) if not mask[k])
    reply = json.loads(seats.handlers["auditor"].handle(json.dumps({
        "type": "step", "data": {"action_index": masked}})))
    assert reply["data"]["code"] == "execution_error"


@pytest.mark.parametrize("fraudster", sorted(seed_protocol.SEED_FRAUDSTERS))
@pytest.mark.parametrize("task_id", ("task_1", "task_3"))
def test_an_earlier_fraudster_that_proposes_while_proposals_remain_is_never_charged(
        task_id, fraudster):
    """Earlier clients propose while ``proposals_remaining`` is above 0 (they know no
    ``can_propose``): it reads 0 once no proposal can come (the last round, which takes none;
    after commit_final; play over), so none of their moves is charged. With 12 proposals to
    spend, they still have some when the last round comes."""
    for seed in (1, 2, 3):
        seats = Seats(new_pool(), {"seed": seed, "task_id": task_id, "max_proposals": 12})
        policies = seed_protocol.seed_sweep_policies(fraudster, seed)
        proposed = 0
        while seats.phase in ("fraudster_turn", "investigator_turn"):
            role = PHASE_ROLE[seats.phase]
            action = policies[role].act(seats.observe(role))
            before = seats.entry.referee.totals[0]
            data = seats.ask(role, "step", action)
            if role == "fraudster":
                assert "charged" not in data["feedback"], (action, data["feedback"])
                assert seats.entry.referee.totals[0] == before
                proposed += action["action_type"] == "propose_ad"
            seats.phase = data["phase"]
        assert proposed and seats.entry.referee.proposals_used < 12


def test_proposals_remaining_reads_zero_once_no_proposal_can_come():
    """In the last round (closed to proposals) and after commit_final, with proposals unspent."""
    seats = Seats(new_pool(), {"seed": 7, "task_id": "task_1", "max_proposals": 12})
    fr = seats.observe("fraudster")
    assert fr.proposals_remaining == 12 and fr.round_number < seats.entry.referee.max_rounds
    seats.ask("fraudster", "step", {"action_type": "commit_final", "metadata": {}})
    assert seats.observe("fraudster").proposals_remaining == 0
    assert seats.entry.referee.proposals_used < 12
    last = Seats(new_pool(), {"seed": 7, "task_id": "task_1", "max_proposals": 12})
    ref = last.entry.referee
    while ref.round_number < ref.max_rounds and not ref.done:  # end every turn, rule on nothing
        role = PHASE_ROLE[ref.phase]
        last.ask(role, "step", {"action_type": "end_turn", "metadata": {}})
    assert ref.round_number == ref.max_rounds
    assert last.observe("fraudster").proposals_remaining == 0
