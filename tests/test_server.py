"""The WebSocket adapter (fraudarena_env.server) and its clients (fraudarena_env.client).

Most tests run the app in-process through Starlette's TestClient (no network). The last group
starts uvicorn on a free local port in a background thread (and one test a real server process it
kills with SIGKILL) and drives it with the real clients; they are skipped when no port can be
bound. ``seed_protocol`` is a client that behaves like the lineage's published one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

import seed_protocol  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from fraudarena_env.archive import read_records, replay, state_as_archived  # noqa: E402
from fraudarena_env.arena import Arena  # noqa: E402
from fraudarena_env.faces.encoding import N_ACTIONS, OPS, Observer  # noqa: E402
from fraudarena_env.faces.views import sealed_state  # noqa: E402
from fraudarena_env.models import (  # noqa: E402
    AuditorObservation,
    FraudsterObservation,
    InvestigatorObservation,
)
from fraudarena_env.policies import (  # noqa: E402
    HeuristicAuditor,
    ReactiveFraudster,
    ScriptedInvestigator,
)
from fraudarena_env.referee import Referee  # noqa: E402
from fraudarena_env.rules.catalog import PHASE_ROLE, ROLES, TASK_IDS  # noqa: E402
from fraudarena_env.server import ERROR_CODES, create_app, spawn  # noqa: E402

OBS_MODELS = {"fraudster": FraudsterObservation, "investigator": InvestigatorObservation,
              "auditor": AuditorObservation}
EXTRA_KEYS = ("match_id", "role", "phase", "round_number", "max_rounds", "rounds_remaining")


def baselines(seed):
    return {"fraudster": ReactiveFraudster(seed=seed),
            "investigator": ScriptedInvestigator(seed=seed),
            "auditor": HeuristicAuditor(seed=seed)}


def send(ws, kind, data=None):
    ws.send_json({"type": kind, "data": {} if data is None else data})
    return ws.receive_json()


def send_raw(ws, text):
    ws.send_text(text)
    return ws.receive_json()


def assert_error(reply, code):
    assert reply["type"] == "error", reply
    assert set(reply["data"]) == ({"message", "code", "retry_after"} if code == "rate_limited"
                                  else {"message", "code"})
    assert reply["data"]["code"] == code, reply
    assert reply["data"]["message"]
    return reply["data"]["message"]


def state_of(ws):
    reply = send(ws, "state")
    assert reply["type"] == "state"
    return reply["data"]


def full_state(client, match_id):
    """The whole referee state of a live match, read off the pool (not over the wire)."""
    return client.app.state.pool.get(match_id).referee.state.model_dump(mode="json")


def in_process(reset, actions):
    """The final state of the same match played on a local referee."""
    ref = Referee()
    ref.reset_match(**reset)
    for role, action in actions:
        if "action_index" in action:
            ref.apply(role, OPS[role][action["action_index"]])
        else:
            getattr(ref, f"step_as_{role}")(action)
    return ref


API_KEY = "an-api-key-for-the-tests"
KEY_HEADER = {"X-API-Key": API_KEY}


def without_ids(state):
    return {k: v for k, v in state.items() if k not in ("match_id", "episode_id")}


@pytest.fixture
def client():
    with TestClient(create_app()) as c:
        yield c


# ============================================================================ the seed's clients
def play_seed_match(client, task_id, seed):
    """A whole match by seed-protocol clients; every reply validated strictly. Returns the
    match id, the actions sent and the final state."""
    policies = seed_protocol.seed_policies()
    actions = []
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/auditor") as aud:
        socks = {"fraudster": fr, "investigator": inv, "auditor": aud}
        reply = send(fr, "reset", {"seed": seed, "task_id": task_id})
        match_id = reply["data"]["match_id"]
        for role in ("investigator", "auditor"):
            reply = send(socks[role], "join", {"match_id": match_id})
            seed_protocol.OBSERVATIONS[role].model_validate(reply["data"])
        phase = reply["data"]["phase"]
        while phase != "done":
            role = PHASE_ROLE[phase]
            obs = seed_protocol.OBSERVATIONS[role].model_validate(send(socks[role], "obs")["data"])
            action = policies[role].act(obs)
            reply = send(socks[role], "step", action)
            assert reply["type"] == "observation", (action, reply)
            seed_protocol.OBSERVATIONS[role].model_validate(reply["data"])
            for ws in socks.values():
                state = seed_protocol.RefereeState.model_validate(state_of(ws))
                assert state.match_id == match_id
            actions.append((role, action))
            phase = reply["data"]["phase"]
            assert len(actions) < 3000
        final = state_of(aud)
    return match_id, actions, final


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_seed_protocol_clients_play_whole_matches(client, task_id):
    match_id, actions, final = play_seed_match(client, task_id, seed=17)
    kinds = {(r, a["action_type"]) for r, a in actions}
    assert ("fraudster", "end_turn") not in kinds  # the turn ends at the cap
    assert ("auditor", "flag_fraudster") in kinds and ("auditor", "flag_investigator") in kinds
    # The queue-level and repeated flags were answered; repeats counted once.
    ref = in_process({"seed": 17, "task_id": task_id}, actions)
    assert without_ids(final) == without_ids(ref.state.model_dump(mode="json"))
    flags = [e for e in ref.auditor_log if e["action_type"].startswith("flag")]
    repeats = [e for e in flags if e.get("repeat")]
    assert repeats and all(e["reward"] == 0.0 for e in repeats)
    assert len(ref.auditor_flags) == len(flags) - len(repeats)
    assert any(f["target_ad_id"] is None and f["track"] == "B" for f in ref.auditor_flags)
    seed_protocol.RefereeState.model_validate(final)
    assert final["phase"] == "done" and final["grader_score"] is not None
    assert final["max_actions_per_turn"] >= 1


def test_seed_shapes_in_the_auditor_record(client):
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/auditor") as aud:
        match_id = send(fr, "reset", {"seed": 3, "task_id": "task_1",
                                      "max_fraudster_actions_per_turn": 2})["data"]["match_id"]
        send(inv, "join", {"match_id": match_id})
        send(aud, "join", {"match_id": match_id})
        propose = {"action_type": "propose_ad", "category": "ecommerce", "ad_copy": "Shoes!",
                   "landing_page_blurb": "Shop", "targeting_summary": "Runners", "metadata": {}}
        send(fr, "step", propose)
        send(fr, "step", {"action_type": "modify_pending_ad", "slot_index": 0,
                          "new_ad_copy": "Running shoes", "metadata": {}})
        data = send(inv, "obs")["data"]
        ad = data["available_ads"][0]
        send(inv, "step", {"action_type": "investigate", "ad_id": ad,
                           "investigation_target": "landing_page", "metadata": {}})
        while state_of(fr)["phase"] != "audit_phase":
            phase = state_of(fr)["phase"]
            ws = fr if phase == "fraudster_turn" else inv
            send(ws, "step", {"action_type": "commit_final" if ws is fr else "end_turn"})
        obs = seed_protocol.AuditorObservation.model_validate(send(aud, "obs")["data"])
    propose_entry, modify_entry = obs.fraudster_proposals
    assert (propose_entry.action_type, modify_entry.action_type) == ("propose_ad",
                                                                     "modify_pending_ad")
    assert propose_entry.landing_page_blurb == "Shop" and propose_entry.targeting_summary == \
        "Runners"
    assert modify_entry.new_ad_copy == "Running shoes" and modify_entry.slot_index == 0
    assert modify_entry.ts > propose_entry.ts
    pull = next(e for e in obs.investigator_actions if e.action_type == "investigate")
    assert pull.findings_excerpt.startswith("[landing_page]") and pull.phase == \
        "investigator_turn"
    assert all(e.reward is None for e in obs.investigator_actions)  # not the auditor's


# ============================================================================ sealed information
def test_roles_see_only_their_own_while_the_match_runs(client):
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/auditor") as aud:
        match_id = send(fr, "reset", {"seed": 4, "task_id": "task_3"})["data"]["match_id"]
        send(inv, "join", {"match_id": match_id})
        send(aud, "join", {"match_id": match_id})
        send(fr, "step", {"action_type": "propose_ad", "category": "ecommerce",
                          "tactic": "blatant"})
        send(fr, "step", {"action_type": "end_turn"})
        ad = send(inv, "obs")["data"]["available_ads"][0]
        send(inv, "step", {"action_type": "verdict", "ad_id": ad, "verdict": "reject"})
        for ws, role in ((fr, "fraudster"), (inv, "investigator"), (aud, "auditor")):
            state = state_of(ws)
            assert state["seed"] is None and "seed" in state["metadata"]["sealed"]
            assert match_id == state["match_id"] == state["episode_id"]
            for other in set(ROLES) - {role}:
                assert state[f"{other}_reward"] == 0.0
            text = json.dumps(state)
            for word in ("ground_truth", "difficulty", "fraud_type"):
                assert word not in text
        inv_state = state_of(inv)
        assert inv_state["fraudster_proposals"] == [] and "tactic" not in json.dumps(inv_state)
        assert inv_state["investigator_action_log"][0]["reward"] != 0.0
        assert state_of(aud)["investigator_action_log"] == []
        assert "links" not in state_of(fr)["investigator_state"]
        obs_text = {r: json.dumps(send(ws, "obs")["data"]) for r, ws in
                    (("investigator", inv), ("auditor", aud))}
        for word in ("ground_truth", "tactic", "fraud_type", "difficulty"):
            assert word not in obs_text["investigator"] and word not in obs_text["auditor"]
        # The referee's own id is derived from the seed: it is never shown.
        ref = client.app.state.pool.get(match_id).referee
        assert ref.match_id not in json.dumps([state_of(ws) for ws in (fr, inv, aud)])


def test_a_remote_investigator_cannot_tell_a_proposal_by_when_it_arrived(client):
    """Polls while the fraudster moves show no ad that arrived since the investigator's turn
    ended, in any observation format or the state: its next turn shows the round's organic ads
    and the proposals together. (Shown as they came, every ad new at that turn was a proposal,
    and a proposal is never legit.)"""
    def ads(ws):
        shown = {fmt: send(ws, "obs", {"obs_format": fmt})["data"] for fmt in ("json", "tensor")}
        vector = np.asarray(shown["tensor"]["observation"])
        present = vector[at["present"]:at["present"] + 32]
        return set(shown["json"]["available_ads"]), {f"ad_{s + 1:03d}" for s in
                                                      np.flatnonzero(present)}, \
            set(state_of(ws)["investigator_state"]["pending"])

    at = Observer("investigator").off
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv:
        match_id = send(fr, "reset", {"seed": 3, "task_id": "task_3"})["data"]["match_id"]
        send(inv, "join", {"match_id": match_id})
        for round_number in (1, 2):
            seen = ads(inv)
            assert seen[0] == seen[1] == seen[2]  # one view in every format
            proposal = send(fr, "step", {"action_type": "propose_ad", "category": "ecommerce",
                                         "tactic": "camouflaged"})
            assert "error" not in proposal["type"]
            assert ads(inv) == seen  # the proposal is not shown yet ...
            send(fr, "step", {"action_type": "end_turn"})
            turn = ads(inv)
            new = turn[0] - seen[0]
            assert turn[0] == turn[1] == turn[2]
            mine = {state_of(fr)["fraudster_proposals"][-1]["ad_id"]}
            assert mine <= new and len(new) > len(mine)  # ... and comes with organic ads
            while state_of(inv)["phase"] == "investigator_turn":
                send(inv, "step", {"action_type": "end_turn"})
            assert state_of(inv)["round_number"] == round_number + 1


def test_a_server_drawn_seed_is_shown_only_when_done(client):
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/auditor") as aud:
        match_id = send(fr, "reset", {"task_id": "task_1"})["data"]["match_id"]
        send(inv, "join", {"match_id": match_id})
        send(aud, "join", {"match_id": match_id})
        send(fr, "step", {"action_type": "commit_final"})
        while state_of(inv)["phase"] == "investigator_turn":
            assert state_of(inv)["seed"] is None
            send(inv, "step", {"action_type": "end_turn"})
        assert state_of(aud)["seed"] is None
        assert state_of(aud)["investigator_reward"] == 0.0
        send(aud, "step", {"action_type": "submit_audit_report"})
        done = state_of(aud)
    assert isinstance(done["seed"], int) and done["investigator_reward"] != 0.0
    assert "sealed" not in done["metadata"]
    assert in_process({"seed": done["seed"], "task_id": "task_1"}, [
        (e["role"], e["action"]) for e in client.app.state.pool.archive.get(match_id)["actions"]
    ]).state.investigator_reward == done["investigator_reward"]


def test_sealed_state_is_the_whole_state_once_done():
    ref = in_process({"seed": 1, "task_id": "task_1"}, [
        ("fraudster", {"action_type": "commit_final"})])
    while ref.phase == "investigator_turn":
        ref.step_as_investigator({"action_type": "end_turn"})
    ref.step_as_auditor({"action_type": "submit_audit_report"})
    whole = {**ref.state.model_dump(mode="json"), "match_id": "m", "episode_id": "e"}
    for role in ROLES:
        assert sealed_state(ref, role, "m", "e") == whole
    with pytest.raises(ValueError):
        sealed_state(ref, "spectator", "m", "e")


# ============================================================================ error codes
def test_every_client_reachable_error_code():
    seen = set()
    with TestClient(create_app(max_matches=2, max_message_bytes=4096, rate_limit=0.01,
                               rate_burst=30)) as client, \
            client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/investigator") as inv2:
        assert_error(send_raw(fr, "{not json"), "invalid_json")
        seen.add("invalid_json")
        for kind in ("step", "obs", "state"):
            assert_error(send(inv, kind), "no_match")
        seen.add("no_match")
        assert_error(send(fr, "reset", {"task_id": "task_9"}), "reset_error")
        seen.add("reset_error")
        assert_error(send(inv, "join", {}), "missing_match_id")
        assert_error(send(inv, "join", {"match_id": ""}), "missing_match_id")
        seen.add("missing_match_id")
        assert_error(send(inv, "join", {"match_id": "m_nope"}), "unknown_match")
        seen.add("unknown_match")
        assert_error(send(fr, "dance"), "unknown_type")
        seen.add("unknown_type")
        assert_error(send(fr, "obs", {"pad": "x" * 5000}), "message_too_large")
        seen.add("message_too_large")

        match_id = send(fr, "reset", {"seed": 5, "task_id": "task_1",
                                      "illegal_action": "raise"})["data"]["match_id"]
        send(inv, "join", {"match_id": match_id})
        assert_error(send(inv2, "join", {"match_id": match_id}), "role_taken")
        seen.add("role_taken")
        send(inv2, "reset", {"seed": 6})
        with client.websocket_connect("/ws/auditor") as aud:
            assert_error(send(aud, "reset", {"seed": 7}), "capacity_reached")
        seen.add("capacity_reached")
        before = full_state(client, match_id)
        msg = assert_error(send(fr, "step", {"action_type": "fly"}), "validation_error")
        assert "action_type" in msg
        seen.add("validation_error")
        assert_error(send(inv, "step", {"action_type": "end_turn"}), "phase_violation")
        seen.add("phase_violation")
        msg = assert_error(send(fr, "step", {"action_type": "modify_pending_ad", "slot_index": 3,
                                             "edit": "soften_copy"}), "execution_error")
        assert "slot_index 3" in msg
        seen.add("execution_error")
        assert full_state(client, match_id) == before  # nothing above changed the match
        assert send(fr, "step", {"action_type": "end_turn"})["type"] == "observation"
        assert state_of(inv)["phase"] == "investigator_turn"
        with client.websocket_connect("/ws/auditor") as chatty:
            for _ in range(30):
                send(chatty, "obs")
            assert "messages a second" in assert_error(send(chatty, "obs"), "rate_limited")
        seen.add("rate_limited")
    # storage_error: test_store.py's test_a_full_disk_answers_every_client_and_loses_nothing_...
    assert seen == set(ERROR_CODES) - {"fatal_error", "storage_error"}


def test_illegal_steps_leave_the_match_unchanged(client):
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv:
        match_id = send(fr, "reset", {"seed": 9, "task_id": "task_2",
                                      "illegal_action": "raise"})["data"]["match_id"]
        obs_before = send(inv, "join", {"match_id": match_id})["data"]
        for key in ("seat_token", "seed_chosen_by_client"):  # only a join reply carries them
            obs_before.pop(key)
        allowed = send(fr, "obs")["data"]["allowed_categories"]
        from fraudarena_env.rules.catalog import CATEGORIES

        banned = next(c.name for c in CATEGORIES if c.name not in allowed)
        before = full_state(client, match_id)
        bad = [
            (fr, {"action_type": "propose_ad", "category": banned, "tactic": "subtle"},
             "execution_error"),
            (fr, {"action_type": "propose_ad", "category": "no_such_category",
                  "tactic": "subtle"}, "execution_error"),
            (fr, {"action_type": "end_turn", "ad_copy": "x"}, "validation_error"),
            (fr, {"action_type": "end_turn", "obs_format": "tensor"}, "validation_error"),
            (inv, {"action_type": "verdict", "ad_id": "ad_001", "verdict": "reject"},
             "phase_violation"),
            (fr, [1, 2], "validation_error"),
        ]
        for ws, data, code in bad:
            assert_error(send(ws, "step", data), code)
        assert full_state(client, match_id) == before
        assert send(inv, "obs")["data"] == obs_before
        send(fr, "step", {"action_type": "end_turn"})
        # A refused verdict spends no budget.
        budget = full_state(client, match_id)["budget_remaining"]
        present = full_state(client, match_id)["investigator_state"]["pending"]
        absent = next(f"ad_{k:03d}" for k in range(32, 0, -1) if f"ad_{k:03d}" not in present)
        for data in ({"action_type": "verdict", "ad_id": absent, "verdict": "reject"},
                     {"action_type": "verdict", "ad_id": "ad_001", "verdict": "maybe"},
                     {"action_type": "verdict", "ad_id": "ad_001", "verdict": "reject",
                      "confidence": 2}):
            assert send(inv, "step", data)["type"] == "error"
        assert full_state(client, match_id)["budget_remaining"] == budget
        # After the match ends, any step is a phase violation.
        send(inv, "step", {"action_type": "end_turn"})
        send(fr, "step", {"action_type": "commit_final"})
        while state_of(fr)["phase"] == "investigator_turn":
            send(inv, "step", {"action_type": "end_turn"})
        with client.websocket_connect("/ws/auditor") as aud:
            send(aud, "join", {"match_id": match_id})
            assert send(aud, "step", {"action_type": "submit_audit_report"})["data"]["done"]
            done = state_of(aud)
            assert_error(send(aud, "step", {"action_type": "submit_audit_report"}),
                         "phase_violation")
            assert_error(send(fr, "step", {"action_index": 0}), "phase_violation")
            assert state_of(aud) == done


def test_garbage_never_breaks_a_socket_or_a_match(client):
    with client.websocket_connect("/ws/fraudster") as fr:
        match_id = send(fr, "reset", {"seed": 2})["data"]["match_id"]
        before = full_state(client, match_id)
        cases = [
            ("null", "invalid_json"), ('"hello"', "invalid_json"), ("[1]", "invalid_json"),
            ("[" * 50_000, "validation_error"), ('{"type": 5}', "unknown_type"),
            ('{"data": {}}', "unknown_type"), ("9" * 5000, "invalid_json"),
            ('{"type": "obs", "data": "x"}', "validation_error"),
            ('{"type": "obs", "data": []}', "validation_error"),
            ('{"type": "obs", "data": 0}', "validation_error"),
            ('{"type": "obs", "data": false}', "validation_error"),
            ('{"type": "obs", "data": {"obs_format": "xml"}}', "validation_error"),
            ('{"type": "reset", "data": [1]}', "validation_error"),
            ('{"type": "reset", "data": {"seed": -1}}', "reset_error"),
            ('{"type": "reset", "data": {"seed": "7"}}', "reset_error"),
            ('{"type": "reset", "data": {"seed": true}}', "reset_error"),
            ('{"type": "reset", "data": {"seed": 1e400}}', "reset_error"),
            ('{"type": "reset", "data": {"episode_id": 5}}', "reset_error"),
            ('{"type": "reset", "data": {"max_rounds": 0}}', "reset_error"),
            ('{"type": "reset", "data": {"max_rounds": 200}}', "reset_error"),
            ('{"type": "reset", "data": {"max_proposals": 100000}}', "reset_error"),
            ('{"type": "reset", "data": {"allowed_categories": [[1]]}}', "reset_error"),
            ('{"type": "reset", "data": {"allowed_categories": "ecommerce"}}', "reset_error"),
            ('{"type": "reset", "data": {"allowed_categories": []}}', "reset_error"),
            # 64 KiB of one category, repeated, made each match hold ~345 KiB instead of ~42
            ('{"type": "reset", "data": {"allowed_categories": ["saas", "saas"]}}',
             "reset_error"),
            ('{"type": "reset", "data": {"task_id": ["task_1"]}}', "reset_error"),
            ('{"type": "reset", "data": {"obs_format": "xml"}}', "validation_error"),
            # there, but no id: a wrong type, not a missing id
            ('{"type": "join", "data": {"match_id": ["x"]}}', "validation_error"),
            ('{"type": "join", "data": {"match_id": 123}}', "validation_error"),
            ('{"type": "join", "data": {"match_id": null}}', "missing_match_id"),
            ('{"type": "step", "data": {"action_index": "1"}}', "validation_error"),
            ('{"type": "step", "data": {"action_type": "end_turn", "metadata": "\\ud800"}}',
             "validation_error"),
            ('{"type": "step", "data": {"action_type": "propose_ad", "category": "ecommerce", '
             '"ad_copy": "hi \\udfff"}}', "validation_error"),
            ('{"type": "reset", "data": {"episode_id": "\\ud83d"}}', "validation_error"),
        ]
        for text, code in cases:
            assert_error(send_raw(fr, text), code)
        fr.send_bytes(b"\xff\xfe")
        assert_error(fr.receive_json(), "invalid_json")
        fr.send_bytes(json.dumps({"type": "state", "data": {}}).encode())
        assert fr.receive_json()["type"] == "state"  # binary JSON frames are accepted too
        # Refused resets create nothing and leave the socket attached to its match.
        assert full_state(client, match_id) == before
        assert len(client.app.state.pool) == 1


def test_error_replies_quote_only_a_short_excerpt(client):
    long = "Z" * 3000
    with client.websocket_connect("/ws/fraudster") as fr:
        replies = [send(fr, long), send(fr, "reset", {"task_id": long}),
                   send(fr, "join", {"match_id": long}),
                   send(fr, "reset", {"allowed_categories": [long]}),
                   send(fr, "reset", {"episode_id": long})]
        send(fr, "reset", {"seed": 1, "illegal_action": "raise"})
        replies += [send(fr, "step", {"action_type": "propose_ad", long: 1}),
                    send(fr, "step", {"action_type": long}),
                    send(fr, "step", {"action_type": "propose_ad", "category": long[:60],
                                      "tactic": "subtle"})]
    for reply in replies:
        assert_error(reply, reply["data"]["code"])
        assert len(reply["data"]["message"]) <= 400
        assert "Z" * 80 not in reply["data"]["message"]


def test_a_frame_json_cannot_read_says_why(client):
    """Bad UTF-8 and an integer of more digits than Python reads were both answered "the frame
    is not valid JSON: ValueError", which named neither (and the second is valid JSON)."""
    with client.websocket_connect("/ws/fraudster") as fr:
        fr.send_bytes(b'{"type": "obs", "data": {"x": "\xff"}}')
        assert "not UTF-8" in assert_error(fr.receive_json(), "invalid_json")
        msg = assert_error(send_raw(fr, '{"type": "reset", "data": {"seed": ' + "9" * 5000
                                    + "}}"), "invalid_json")
        assert "digits" in msg and "ValueError" not in msg


def test_a_step_after_the_end_says_the_match_is_over_and_what_a_client_sends_next(client):
    """It said "call reset_match() first", the in-process referee's call, which no message of
    the protocol is."""
    with client.websocket_connect("/ws/investigator") as inv:
        data = send(inv, "reset", {"seed": 2, "task_id": "task_1",
                                   "opponents": {"fraudster": "reactive",
                                                 "auditor": "heuristic"}})["data"]
        while not data["done"]:
            data = send(inv, "step", {"action_type": "end_turn"})["data"]
        msg = assert_error(send(inv, "step", {"action_type": "end_turn"}), "phase_violation")
    assert "the match is over" in msg and "send reset" in msg and "reset_match" not in msg


def test_internal_fault_is_fatal_error_and_closes_only_that_socket(client):
    app_pool = client.app.state.pool
    with client.websocket_connect("/ws/fraudster") as fr:
        reply = send(fr, "reset", {"seed": 3})["data"]
        match_id, token = reply["match_id"], reply["seat_token"]
        ref = app_pool.get(match_id).referee

        def boom():
            raise RuntimeError("simulated fault")

        ref.build_fraudster_observation = boom
        assert "RuntimeError" in assert_error(send(fr, "obs"), "fatal_error")
        with pytest.raises(WebSocketDisconnect) as info:
            fr.receive_json()
        assert info.value.code == 1011
        del ref.build_fraudster_observation
    assert app_pool.get(match_id).connected_roles == []
    with client.websocket_connect("/ws/fraudster") as again:
        assert_error(send(again, "join", {"match_id": match_id}), "role_taken")
        assert send(again, "join", {"match_id": match_id, "seat_token": token})["type"] == \
            "observation"


# ============================================================================ hypothesis fuzzing
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False), st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
action_keys = st.sampled_from(["action_type", "ad_id", "verdict", "confidence", "category",
                               "tactic", "slot_index", "flag_type", "target_ad_id",
                               "action_index", "metadata", "investigation_target", "edit"])
action_values = st.one_of(json_value, st.sampled_from(
    ["end_turn", "propose_ad", "verdict", "investigate", "ad_001", "ad_002", "approve",
     "ecommerce", "blatant", "soften_copy", "commit_final", "landing_page", 0, 1, 0.5]))
fuzz_message = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["step", "obs", "state", "join", "reset",
                                                    "dance"]),
                           "data": st.one_of(json_value, st.dictionaries(
                               action_keys, action_values, max_size=4))}),
    json_value)


@pytest.fixture
def fuzz_client():
    """Each example leaves its match unfinished, and opens two sockets: no abandon budget and no
    handshake rate to run out of here."""
    with TestClient(create_app(abandon_rate=None, http_rate_limit=None)) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(messages=st.lists(fuzz_message, min_size=1, max_size=6))
def test_fuzzed_messages_never_crash_or_change_a_match_but_by_a_valid_step(fuzz_client,
                                                                            messages):
    client = fuzz_client
    pool = client.app.state.pool
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv:
        match_id = send(fr, "reset", {"seed": 5, "task_id": "task_2"})["data"]["match_id"]
        send(inv, "join", {"match_id": match_id})
        ref = pool.get(match_id).referee
        for ws in (fr, inv):
            for msg in messages:
                steps = ref.step_count
                before = ref.state.model_dump(mode="json")
                ws.send_text(json.dumps(msg))
                reply = ws.receive_json()
                assert reply["type"] in ("observation", "state", "error")
                assert len(json.dumps(reply)) < 64 * 1024
                if reply["type"] == "error":
                    assert len(reply["data"]["message"]) <= 400
                    assert reply["data"]["code"] in ERROR_CODES
                    assert reply["data"]["code"] != "fatal_error"
                stepped = reply["type"] == "observation" and msg.get("type") == "step"
                if not stepped:
                    assert ref.state.model_dump(mode="json") == before
                else:
                    assert ref.step_count in (steps, steps + 1)
    pool.sweep(now=time.monotonic() + 10**6)


# ============================================================================ tensor face
def test_tensor_observations_and_action_index_steps(client):
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/auditor") as aud:
        data = send(fr, "reset", {"seed": 4, "task_id": "task_3", "obs_format": "tensor"})["data"]
        match_id = data["match_id"]
        ref = Referee()
        ref.reset_match(seed=4, task_id="task_3")
        local = {r: Observer(r) for r in ROLES}
        assert len(data["observation"]) == local["fraudster"].size
        assert len(data["action_mask"]) == N_ACTIONS["fraudster"]
        assert "current_queue" in data  # the model JSON is still there
        np.testing.assert_array_equal(np.float32(data["observation"]),
                                      local["fraudster"].fill(ref))
        np.testing.assert_array_equal(np.int8(data["action_mask"]), local["fraudster"].mask(ref))
        for ws, role in ((inv, "investigator"), (aud, "auditor")):
            d = send(ws, "join", {"match_id": match_id, "obs_format": "tensor"})["data"]
            assert len(d["observation"]) == local[role].size
            assert sum(d["action_mask"]) == 0  # not their turn
            np.testing.assert_array_equal(np.float32(d["observation"]), local[role].fill(ref))
        assert_error(send(inv, "step", {"action_index": N_ACTIONS["investigator"] - 1}),
                     "phase_violation")
        mask = np.int8(data["action_mask"])
        k = int(np.flatnonzero(mask)[0])
        reply = send(fr, "step", {"action_index": k, "metadata": {}})
        assert reply["type"] == "observation"
        ref.apply("fraudster", OPS["fraudster"][k])
        np.testing.assert_array_equal(np.float32(reply["data"]["observation"]),
                                      local["fraudster"].fill(ref))
        assert without_ids(full_state(client, match_id)) == \
            without_ids(ref.state.model_dump(mode="json"))
        # The compact face: base64 vectors, the same numbers.
        compact = send(fr, "obs", {"obs_format": "tensor_sparse"})["data"]
        from fraudarena_env.client import decode_observation

        decoded = decode_observation("fraudster", compact)
        np.testing.assert_array_equal(decoded["observation"], local["fraudster"].fill(ref))
        np.testing.assert_array_equal(decoded["action_mask"], local["fraudster"].mask(ref))
        assert "current_queue" not in compact and compact["done"] is False
        # Masked, out-of-range and malformed indices are refused; the match is unchanged.
        before = full_state(client, match_id)
        masked = int(np.flatnonzero(decoded["action_mask"] == 0)[0])
        msg = assert_error(send(fr, "step", {"action_index": masked}), "execution_error")
        assert f"action_index {masked}" in msg
        for bad in (N_ACTIONS["fraudster"], -1, 1.0, True, None):
            assert_error(send(fr, "step", {"action_index": bad}), "validation_error")
        assert_error(send(fr, "step", {"action_index": k, "action_type": "end_turn"}),
                     "validation_error")
        assert full_state(client, match_id) == before
        plain = send(fr, "obs", {"obs_format": "json"})["data"]
        assert "observation" not in plain and "action_mask" not in plain
        assert "observation" in send(inv, "obs")["data"]


# ============================================================================ seats, ids, the pool
def test_sparse_vectors_are_json_the_client_decodes_exactly():
    from fraudarena_env.client import dense
    from fraudarena_env.server import sparse_json

    rng = np.random.default_rng(0)
    vector = np.where(rng.random(3000) < 0.2, rng.normal(size=3000), 0).astype(np.float32)
    vector[[0, 2999]] = [-0.0, 1e-30]  # a signed zero is zero; a tiny value is not
    mask = (rng.random(977) < 0.1).astype(np.int8)
    for v, dtype, values in ((vector, np.float32, True), (mask, np.int8, False),
                             (np.zeros(5, np.int8), np.int8, False)):
        data = json.loads(sparse_json(v, values=values))
        assert data["size"] == v.size and ("value" in data) == values
        np.testing.assert_array_equal(dense(data, dtype), v)


def test_match_ids_are_unguessable_and_listed_only_for_diagnostics(client):
    with client.websocket_connect("/ws/fraudster") as a, \
            client.websocket_connect("/ws/fraudster") as b:
        cfg = {"seed": 21, "task_id": "task_2", "max_rounds": 3, "episode_id": "ep-A"}
        first = send(a, "reset", cfg)["data"]
        second = send(b, "reset", cfg)["data"]
        ref = Referee()
        ref.reset_match(**{k: v for k, v in cfg.items() if k != "episode_id"})
        assert first["match_id"] != second["match_id"]
        assert ref.match_id not in (first["match_id"], second["match_id"])
        assert len(first["match_id"]) >= 20 and first["seat_token"] != second["seat_token"]
        assert state_of(a)["episode_id"] == "ep-A"
        listed = client.get("/matches").json()
        assert listed["active_matches"] == {} and listed["live"] == 2
        assert "active_matches" not in client.get("/api/v1/matches").json() or \
            client.get("/api/v1/matches").json()["active_matches"] == {}
    with TestClient(create_app(diagnostics=True)) as diag, \
            diag.websocket_connect("/ws/fraudster") as a:
        match_id = send(a, "reset", {"seed": 1})["data"]["match_id"]
        assert list(diag.get("/matches").json()["active_matches"]) == [match_id]


def test_a_held_seat_is_refused_and_its_token_takes_it_back(client):
    with client.websocket_connect("/ws/investigator") as holder, \
            client.websocket_connect("/ws/investigator") as intruder, \
            client.websocket_connect("/ws/fraudster") as fr:
        match_id = send(fr, "reset", {"seed": 8})["data"]["match_id"]
        token = send(holder, "join", {"match_id": match_id})["data"]["seat_token"]
        assert_error(send(intruder, "join", {"match_id": match_id}), "role_taken")
        assert_error(send(intruder, "join", {"match_id": match_id, "seat_token": "guess"}),
                     "role_taken")
        assert_error(send(intruder, "join", {"match_id": match_id, "seat_token": 5}),
                     "role_taken")
        send(fr, "step", {"action_type": "end_turn"})
        assert send(holder, "step", {"action_type": "end_turn"})["type"] == "observation"
        # Leave, come back with the token on a new socket: the match resumes where it was.
        holder.send_json({"type": "close", "data": {}})
    with client.websocket_connect("/ws/investigator") as again:
        assert_error(send(again, "join", {"match_id": match_id}), "role_taken")
        back = send(again, "join", {"match_id": match_id, "seat_token": token})["data"]
        assert back["seat_token"] == token and back["round_number"] == 2
        # A reconnect moves the seat even from a socket that is still open.
        with client.websocket_connect("/ws/investigator") as third:
            send(third, "join", {"match_id": match_id, "seat_token": token})
            assert "taken back" in assert_error(send(again, "obs"), "no_match")
            assert send(third, "obs")["type"] == "observation"


def test_caps_per_connection_and_in_all():
    with TestClient(create_app(max_matches=3, max_matches_per_connection=2)) as client, \
            client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv:
        first = send(fr, "reset", {"seed": 1})["data"]["match_id"]
        send(inv, "join", {"match_id": first})  # keeps it live when fr moves on
        second = send(fr, "reset", {"seed": 2})["data"]["match_id"]
        # A new reset would leave `second` (nobody else attached: it is archived), so it fits.
        third = send(fr, "reset", {"seed": 3})["data"]["match_id"]
        assert client.app.state.pool.archive.get(second)["reason"] == "evicted"
        send(inv, "join", {"match_id": first})
        with client.websocket_connect("/ws/auditor") as aud:
            send(aud, "join", {"match_id": third})
            assert_error(send(fr, "reset", {"seed": 4}), "capacity_reached")
            with client.websocket_connect("/ws/auditor") as other:
                send(other, "reset", {"seed": 5})
                with client.websocket_connect("/ws/auditor") as late:
                    msg = assert_error(send(late, "reset", {"seed": 6}), "capacity_reached")
                    assert "full" in msg
        assert len(client.app.state.pool) <= 3


def test_a_reset_abandons_only_a_match_the_socket_made(client):
    pool = client.app.state.pool
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv:
        made = send(fr, "reset", {"seed": 1})["data"]["match_id"]
        send(fr, "step", {"action_type": "end_turn"})
        send(inv, "join", {"match_id": made})
        fr.send_json({"type": "close", "data": {}})
        send(inv, "reset", {"seed": 2})  # the investigator did not make `made`: it stays live
        assert pool.get(made) is not None and made not in pool.archive
        assert pool.get(made).unheld_since is not None  # for its players to come back


def test_idle_matches_are_swept_into_the_archive(client):
    pool = client.app.state.pool
    with client.websocket_connect("/ws/fraudster") as fr:
        reply = send(fr, "reset", {"seed": 3})["data"]
        match_id, token = reply["match_id"], reply["seat_token"]
        send(fr, "step", {"action_type": "end_turn"})
        assert pool.sweep() == 0
        assert pool.sweep(now=time.monotonic() + 901) == 1
        assert "evicted" in assert_error(send(fr, "obs"), "no_match")
    record = pool.archive.get(match_id)
    assert record["reason"] == "evicted" and record["actions"] == [
        {"role": "fraudster", "action": {"action_type": "end_turn"}}]
    assert record["state"] == state_as_archived(replay(record), record)
    assert client.get(f"/api/v1/matches/{match_id}",
                      headers={"X-Seat-Token": token}).json()["live"] is False


def test_an_idle_match_costs_at_most_110_kib():
    # 94 KiB before the match became a MatchState row (about 60 more small arrays: 102 KiB)
    import gc
    import tracemalloc

    with TestClient(create_app(api_key=API_KEY), headers=KEY_HEADER) as client:
        made = client.post("/api/v1/matches", json={"seed": 0, "task_id": "task_3"}).json()
        assert made["match_id"]  # warm every cache on the way
        pool = client.app.state.pool
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for k in range(20):
            entry = pool.get(client.post("/api/v1/matches", json={
                "seed": k + 1, "task_id": "task_3"}).json()["match_id"])
            for role in ROLES:  # as if three tensor-face sockets had observed it
                pool.observers.get(entry.match_id, role).fill(entry.referee)
        gc.collect()
        per_match = (tracemalloc.get_traced_memory()[0] - base) / 20
        tracemalloc.stop()
        assert len(pool) == 21
    assert per_match <= 110 * 1024, per_match


def test_automatic_garbage_collection_is_off_only_while_the_app_runs():
    import gc

    assert gc.isenabled()
    with TestClient(create_app()):
        assert not gc.isenabled()
    assert gc.isenabled()
    with TestClient(create_app(collect_interval=None)):
        assert gc.isenabled()


def test_serving_whole_matches_leaves_no_reference_cycles():
    """What lets the server turn the automatic collector off: every match it serves, on every
    face and with refused messages, is freed by reference counting alone."""
    import gc

    from fraudarena_env.archive import Archive
    from fraudarena_env.client import decode_observation
    from fraudarena_env.server import Handler, MatchPool, ServerConfig

    pool = MatchPool(ServerConfig(), Archive(None))
    handlers = {role: Handler(pool, role) for role in ROLES}

    def ask(role, kind, data):
        return json.loads(handlers[role].handle(json.dumps({"type": kind, "data": data})))

    gc.collect()
    gc.disable()
    try:
        for seed, fmt in ((1, "json"), (2, "tensor_sparse"), (3, "tensor")):
            policies = baselines(seed)
            data = ask("fraudster", "reset", {"seed": seed, "task_id": "task_3",
                                              "obs_format": fmt})["data"]
            for role in ("investigator", "auditor"):
                ask(role, "join", {"match_id": data["match_id"], "obs_format": fmt})
            while (role := PHASE_ROLE.get(data["phase"])) is not None:
                ask(role, "state", {})
                handlers[role].handle("{not json")
                ask(role, "step", {"action_type": "no_such_action", "metadata": {}})
                obs = decode_observation(role, ask(role, "obs", {})["data"])
                action = policies[role].act(obs)
                action = {"action_index": action} if isinstance(action, int) else \
                    action.model_dump(mode="json", exclude_none=True)
                data = ask(role, "step", action)["data"]
        for handler in handlers.values():
            handler.session.leave(pool)
        assert len(pool) == 0
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_observers_are_shared_and_rebuild_when_handed_another_match():
    from fraudarena_env.server import ObserverCache

    cache = ObserverCache(capacity=2)
    refs = [in_process({"seed": s, "task_id": "task_3"}, [
        ("fraudster", {"action_type": "end_turn"})]) for s in (1, 2, 3)]
    first = cache.get("a", "investigator").fill(refs[0]).copy()
    cache.get("b", "investigator").fill(refs[1])
    reused = cache.get("c", "investigator")  # the capacity is spent: "a"'s observer moves
    assert reused is not cache.get("b", "investigator")
    np.testing.assert_array_equal(reused.fill(refs[2]), Observer("investigator").fill(refs[2]))
    np.testing.assert_array_equal(cache.get("a", "investigator").fill(refs[0]), first)
    cache.forget("a")
    assert cache.get("d", "investigator") is not None


# ============================================================================ archive and REST
def test_finished_matches_are_archived_and_replay_exactly(tmp_path, capsys):
    with TestClient(create_app(data_dir=str(tmp_path), api_key=API_KEY),
                    headers=KEY_HEADER) as client:
        match_id, actions, final = play_seed_match(client, "task_2", seed=23)
        record = client.get(f"/api/v1/matches/{match_id}").json()
        assert record["live"] is False and record["reason"] == "finished"
        assert record["state"] == final
        listed = client.get("/api/v1/matches").json()["archived"]
        assert [m["match_id"] for m in listed] == [match_id]
        assert client.get("/healthz").json()["archived"] == 1
    (record,) = read_records(tmp_path)
    assert [(a["role"], a["action"]["action_type"]) for a in record["actions"]] == \
        [(r, a["action_type"]) for r, a in actions]
    assert state_as_archived(replay(record), record) == final
    from fraudarena_env.cli import main

    export = tmp_path / "export.jsonl"
    assert main(["export", str(tmp_path), str(export)]) == 0
    assert read_records(export) == [record]
    for source in (export, tmp_path):
        assert main(["replay", str(source), "--match", match_id, "--plain"]) == 0
        out = capsys.readouterr().out
        assert match_id in out and "Scoreboard" in out
    assert main(["replay", str(export), "--match", "nope"]) == 2


def test_rest_plays_the_server_seats_one_move_per_turn_of_the_event_loop():
    """POST /api/v1/matches played the server's seats all at once on the event loop (a match
    of checkpoints held every other client for seconds); now each move yields to the others, as
    the sockets' moves do."""
    with TestClient(create_app(api_key=API_KEY), headers=KEY_HEADER) as client:
        pool = client.app.state.pool
        turns, moves, ticker = [0], [], []

        async def tick():
            while True:
                turns[0] += 1
                await asyncio.sleep(0)

        def counted(entry, move=pool.bot_move):
            if not ticker:  # another client's task, on the server's own loop
                loop = asyncio.get_running_loop()
                ticker.append((loop, loop.create_task(tick())))
            moved = move(entry)
            if moved:
                moves.append(turns[0])
            return moved

        pool.bot_move = counted
        made = client.post("/api/v1/matches", json={
            "seed": 4, "task_id": "task_1",
            "opponents": {"fraudster": "reactive", "auditor": "heuristic"}})
        loop, task = ticker[0]
        loop.call_soon_threadsafe(task.cancel)
        assert made.status_code == 200 and set(made.json()["seat_tokens"]) == {"investigator"}
        assert len(moves) >= 2 and all(b > a for a, b in zip(moves, moves[1:])), moves


def test_a_match_made_over_rest_that_no_socket_joins_is_swept_after_the_reconnect_grace():
    """Its server seats had moved (so start_grace no longer applied) and no socket had ever held
    a seat (so reconnect_grace never started): it lived until idle_timeout, 900 s."""
    with TestClient(create_app(api_key=API_KEY), headers=KEY_HEADER) as client:
        pool = client.app.state.pool
        made = client.post("/api/v1/matches", json={
            "seed": 4, "task_id": "task_1",
            "opponents": {"fraudster": "reactive", "auditor": "heuristic"}}).json()
        entry = pool.get(made["match_id"])
        assert entry.actions  # the server's fraudster has moved
        grace = pool.config.reconnect_grace
        assert pool.sweep(now=time.monotonic() + grace / 2) == 0
        assert pool.sweep(now=time.monotonic() + grace + 1) == 1
        assert pool.get(made["match_id"]) is None


def test_rest_creates_matches_with_the_api_key_and_the_key_deletes_them():
    with TestClient(create_app(api_key=API_KEY)) as client:
        assert client.post("/api/v1/matches", json={"seed": 3}).status_code == 401
        assert client.post("/api/v1/matches", json={"seed": 3},
                           headers={"X-API-Key": "not-the-key-at-all"}).status_code == 401
        made = client.post("/api/v1/matches", json={"seed": 3, "task_id": "task_1"},
                           headers={"Authorization": f"Bearer {API_KEY}"}).json()
        match_id, tokens = made["match_id"], made["seat_tokens"]
        assert set(tokens) == set(ROLES) and made["seed_chosen_by_client"] is True
        for bad in ({"json": {"max_rounds": 500}}, {"content": b"[1]"}):
            assert client.post("/api/v1/matches", headers=KEY_HEADER, **bad).status_code == 400
        summary = client.get(f"/api/v1/matches/{match_id}").json()
        assert summary["live"] is True and "seed" not in summary
        with client.websocket_connect("/ws/fraudster") as fr:
            assert_error(send(fr, "join", {"match_id": match_id}), "role_taken")
            send(fr, "join", {"match_id": match_id, "seat_token": tokens["fraudster"]})
            send(fr, "step", {"action_type": "end_turn"})
            for headers in ({}, {"X-Seat-Token": "nope"}, {"X-Seat-Token": tokens["auditor"]}):
                assert client.delete(f"/api/v1/matches/{match_id}",
                                     headers=headers).status_code == 403
            assert client.delete(f"/api/v1/matches/{match_id}",
                                 headers=KEY_HEADER).json()["deleted"]
            assert_error(send(fr, "obs"), "no_match")
        record = client.get(f"/api/v1/matches/{match_id}", headers=KEY_HEADER).json()
        assert record["reason"] == "deleted" and "seat_digests" not in record
        assert client.get("/api/v1/matches/m_unknown").status_code == 404
        assert client.delete("/api/v1/matches/m_unknown", headers=KEY_HEADER).status_code == 404


# ============================================================================ real network
def free_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def live_server():
    uvicorn = pytest.importorskip("uvicorn")
    try:
        sock = free_socket()
    except OSError as exc:
        pytest.skip(f"cannot bind a local port: {exc}")
    port = sock.getsockname()[1]
    app = create_app(max_matches=32)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            pytest.skip("uvicorn did not start")
        time.sleep(0.01)
    yield f"ws://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.mark.parametrize("face", ["json", "tensor_sparse"])
def test_full_matches_over_real_sockets_end_in_the_in_process_state(live_server, face):
    from fraudarena_env.client import FraudArenaClient

    url, app = live_server
    seed, task_id = 13, "task_3"
    policies = baselines(seed)
    with FraudArenaClient(url, "fraudster", obs_format=face) as fr, \
            FraudArenaClient(url + "/", "investigator", obs_format=face) as inv, \
            FraudArenaClient(url.replace("ws://", "http://") + "/ws/auditor", "auditor",
                             obs_format=face) as aud:
        clients = {"fraudster": fr, "investigator": inv, "auditor": aud}
        fr.reset(seed=seed, task_id=task_id)
        inv.join(fr.match_id)
        aud.join(fr.match_id)
        phase = fr.last_data["phase"]
        while phase != "done":
            role = PHASE_ROLE[phase]
            c = clients[role]
            obs = c.observe()
            if face == "json":
                c.step(policies[role].act_model(obs))
            else:
                c.step(policies[role].act(obs))
            phase = c.last_data["phase"]
        final = aud.state()
        assert final.match_id == fr.match_id and final.phase == "done"
    tensor = face == "tensor_sparse"
    result = Arena().play(task_id, seed, baselines(seed),
                          faces=dict.fromkeys(ROLES, "tensor" if tensor else "text"))
    expected = result.referee.state.model_dump(mode="json")
    got = final.model_dump(mode="json")
    assert without_ids(got) == without_ids(expected)
    assert result.steps == got["step_count"]


def test_seat_takeover_and_reconnect_over_real_sockets(live_server):
    from fraudarena_env.client import FraudArenaClient, ServerError

    url, _ = live_server
    with FraudArenaClient(url, "fraudster") as fr:
        fr.reset(seed=31, task_id="task_1")
        with FraudArenaClient(url, "fraudster") as thief:
            with pytest.raises(ServerError) as err:
                thief.join(fr.match_id)
            assert err.value.code == "role_taken"
        token = fr.seat_token
        fr.step({"action_type": "end_turn"})
        match_id = fr.match_id
    with FraudArenaClient(url, "fraudster") as back:
        obs = back.join(match_id, seat_token=token)
        assert obs.phase == "investigator_turn" and back.state().step_count == 1


@pytest.mark.parametrize("retry_after", [None, 0.5])
def test_a_server_error_survives_the_pickle_a_worker_process_sends(retry_after):
    """A client in a worker process (multiprocessing, SubprocVecEnv) pickles the error to raise
    it in the parent; unpickling it was a TypeError (missing 'message')."""
    import pickle

    from fraudarena_env.client import ServerError

    error = ServerError("rate_limited", "too many messages", retry_after)
    copy_ = pickle.loads(pickle.dumps(error))
    assert type(copy_) is ServerError and str(copy_) == str(error)
    assert (copy_.code, copy_.message, copy_.retry_after) == ("rate_limited",
                                                              "too many messages", retry_after)


@pytest.mark.parametrize("seed", [31, 32])
def test_steps_racing_from_every_seat_apply_one_at_a_time(client, seed):
    """Three sockets fire steps at one match at once, each picking from its own, often stale,
    mask. Only the phase's role may act, so the steps each socket saw accepted, in its own order,
    fix one global order; replayed in it on a local referee, they must all be legal and reach the
    server's final state. A server that applied two messages at once (a handler awaiting, or run
    in a thread, where a turn can pass before its bookkeeping is done) fails this."""
    deadline = time.monotonic() + 60
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/auditor") as aud:
        first = send(fr, "reset", {"seed": seed, "task_id": "task_1", "obs_format": "tensor"})
        match_id = first["data"]["match_id"]
        sockets = {"fraudster": fr, "investigator": inv, "auditor": aud}
        masks = {"fraudster": np.int8(first["data"]["action_mask"])}
        for role in ("investigator", "auditor"):
            reply = send(sockets[role], "join", {"match_id": match_id, "obs_format": "tensor"})
            masks[role] = np.int8(reply["data"]["action_mask"])
        accepted: dict[str, list[int]] = {role: [] for role in ROLES}
        barrier = threading.Barrier(len(ROLES))
        failures = []

        def race(role):
            rng = np.random.default_rng(seed * 10 + ROLES.index(role))
            ws, mask, last = sockets[role], masks[role], masks[role]
            barrier.wait(5)
            try:
                while time.monotonic() < deadline:
                    pick = mask if mask.any() else last  # not my turn: fire an old move anyway
                    k = int(rng.choice(np.flatnonzero(pick))) if pick.any() else 0
                    reply = send(ws, "step", {"action_index": k})
                    if reply["type"] == "observation":
                        accepted[role].append(k)
                        data = reply["data"]
                    else:
                        assert reply["type"] == "error", reply  # refused: out of turn, stale
                        assert reply["data"]["code"] != "fatal_error", reply
                        data = send(ws, "obs")["data"]
                    if data["done"]:
                        return
                    last = mask if mask.any() else last
                    mask = np.int8(data["action_mask"])
            except Exception as exc:  # surfaced below: a thread cannot fail the test
                failures.append(exc)

        threads = [threading.Thread(target=race, args=(role,)) for role in ROLES]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures, failures
        assert all(len(steps) > 0 for steps in accepted.values()), accepted
        ref = Referee()
        ref.reset_match(seed=seed, task_id="task_1")
        queues = {role: list(steps) for role, steps in accepted.items()}
        while not ref.done and any(queues.values()):
            role = PHASE_ROLE[ref.state.phase]
            assert queues[role], f"the server accepted no {role} step here"
            ref.apply(role, OPS[role][queues[role].pop(0)])
        assert not any(queues.values()), f"accepted steps left over: {queues}"
        assert ref.done
        assert without_ids(full_state(client, match_id)) == \
            without_ids(ref.state.model_dump(mode="json"))


def test_remote_env_plays_one_role_against_remote_opponents(live_server):
    from fraudarena_env.client import FraudArenaClient, RemoteFraudArena

    url, _ = live_server
    seed, task_id = 5, "task_2"
    policies = baselines(seed)
    fr = FraudArenaClient(url, "fraudster", obs_format="tensor_sparse")
    aud = FraudArenaClient(url, "auditor", obs_format="tensor_sparse")
    fr.reset(seed=seed, task_id=task_id)
    aud.join(fr.match_id)
    env = RemoteFraudArena(url, "investigator", match_id=fr.match_id)
    errors = []

    def opponents():  # the fraudster and the auditor, remote too
        try:
            mine = {"fraudster": fr, "auditor": aud}
            while not fr.last_data["done"]:
                role = PHASE_ROLE[fr.last_data["phase"]]
                if role in mine:
                    mine[role].step(policies[role].act(mine[role].observe()))
                    fr.observe()
                else:
                    time.sleep(0.002)
                    fr.observe()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=opponents, daemon=True)
    thread.start()
    env.reset()
    assert env.possible_agents == ["investigator"]
    total, steps = 0.0, 0
    for agent in env.agent_iter():
        assert agent == "investigator"
        obs, reward, terminated, truncated, info = env.last()
        total += reward
        if not (terminated or truncated):
            assert env.observation_space(agent)["observation"].contains(obs["observation"])
            steps += 1
        env.step(None if terminated or truncated else policies["investigator"].act(obs))
    thread.join(30)
    fr.close()
    aud.close()
    env.close()
    assert not errors and steps > 0
    result = Arena().play(task_id, seed, baselines(seed), faces=dict.fromkeys(ROLES, "tensor"))
    assert total == pytest.approx(result.returns["investigator"])


def test_async_client_runs_many_matches_at_once(live_server):
    from fraudarena_env.client import AsyncFraudArenaClient

    url, _ = live_server

    async def one(seed):
        policies = baselines(seed)
        clients = {r: await AsyncFraudArenaClient.open(url, r, obs_format="tensor_sparse")
                   for r in ROLES}
        await clients["fraudster"].reset(seed=seed, task_id="task_1")
        for r in ("investigator", "auditor"):
            await clients[r].join(clients["fraudster"].match_id)
        phase = "fraudster_turn"
        while phase != "done":
            role = PHASE_ROLE[phase]
            obs = await clients[role].observe()
            await clients[role].step(policies[role].act(obs))
            phase = clients[role].last_data["phase"]
        state = await clients["auditor"].state()
        for c in clients.values():
            await c.close()
        return state

    async def many():
        return await asyncio.gather(*(one(s) for s in (1, 2, 3)))

    states = asyncio.run(many())
    for seed, state in zip((1, 2, 3), states):
        expected = Arena().play("task_1", seed, baselines(seed),
                                faces=dict.fromkeys(ROLES, "tensor")).returns
        assert state.investigator_reward == pytest.approx(expected["investigator"])


def free_port() -> int:
    try:
        with free_socket() as probe:
            return probe.getsockname()[1]
    except OSError as exc:
        pytest.skip(f"cannot bind a local port: {exc}")


def spawn_or_skip(port: int, *options: str):
    """``fraudarena serve`` in a child process (``spawn``), or skip the test."""
    try:
        return spawn(port, *options, quiet=True)
    except RuntimeError as exc:
        pytest.skip(str(exc))


def test_sigkill_and_restart_keep_every_archived_match(tmp_path):
    from fraudarena_env.client import FraudArenaClient

    port = free_port()

    def start():
        return spawn_or_skip(port, "--data-dir", str(tmp_path), "--api-key", API_KEY)

    url = f"ws://127.0.0.1:{port}"
    proc = start()
    try:
        ids = []
        for seed in (1, 2):
            with FraudArenaClient(url, "fraudster") as fr, \
                    FraudArenaClient(url, "investigator") as inv, \
                    FraudArenaClient(url, "auditor") as aud:
                fr.reset(seed=seed, task_id="task_1")
                inv.join(fr.match_id)
                aud.join(fr.match_id)
                fr.step({"action_type": "commit_final"})
                while inv.step({"action_type": "end_turn"}).phase == "investigator_turn":
                    pass
                aud.step({"action_type": "submit_audit_report"})
                ids.append(fr.match_id)
                final = aud.state().model_dump(mode="json")
        with FraudArenaClient(url, "fraudster") as fr:
            fr.reset(seed=9)  # live, unfinished when killed
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    proc = start()
    try:
        import httpx

        http = f"http://127.0.0.1:{port}"
        for match_id in ids:
            record = httpx.get(f"{http}/api/v1/matches/{match_id}", headers=KEY_HEADER).json()
            assert record["reason"] == "finished" and record["state"]["phase"] == "done"
        assert record["state"] == final
        assert httpx.get(f"{http}/healthz").json()["archived"] >= 2
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_client_whose_call_timed_out_is_closed_not_a_call_behind(live_server):
    """The late reply to a call that timed out was read as the next call's: a retried reset
    reported the abandoned match, and every later call the previous call's reply."""
    from fraudarena_env.client import AsyncFraudArenaClient, FraudArenaClient

    url, _ = live_server
    opponents = {"fraudster": "reactive", "auditor": "heuristic"}
    client = FraudArenaClient(url, "investigator", timeout=1e-6)  # no reply comes so soon
    with pytest.raises(TimeoutError, match="the client is closed, since that reply could still "
                                           "come and answer the next call"):
        client.reset(seed=7, task_id="task_3", opponents=opponents)
    with pytest.raises(RuntimeError, match=r"closed \(no reply to reset came within"):
        client.reset(seed=8, task_id="task_1", opponents=opponents)

    async def timed_out():
        aclient = await AsyncFraudArenaClient.open(url, "investigator", timeout=1e-6)
        with pytest.raises(TimeoutError, match="the client is closed"):
            await aclient.reset(seed=7, task_id="task_3", opponents=opponents)
        with pytest.raises(RuntimeError, match="closed"):
            await aclient.observe()

    asyncio.run(timed_out())


def test_a_socket_the_server_closes_says_why_through_the_client():
    """A socket refused at the handshake, or closed for holding no seat, raised a bare
    ConnectionClosed (the server's reason, sent before it closed, was never read)."""
    from fraudarena_env.client import FraudArenaClient, ServerError

    port = free_port()
    proc = spawn_or_skip(port, "--in-memory", "--max-connections-per-address", "1",
                         "--lobby-timeout", "1")
    url = f"ws://127.0.0.1:{port}"
    try:
        with FraudArenaClient(url, "fraudster") as holder:
            holder.reset(seed=1, task_id="task_1")
            refused = FraudArenaClient(url, "investigator")
            with pytest.raises(ServerError) as error:
                refused.join(holder.match_id)
            assert error.value.code == "capacity_reached"
            refused.close()
        idle = FraudArenaClient(url, "fraudster")
        time.sleep(2.5)  # past the lobby timeout: the server closes the seatless socket
        with pytest.raises(ServerError) as error:
            idle.reset(seed=1, task_id="task_1")
        assert error.value.code == "no_match" and "held no seat" in error.value.message
        idle.close()
    finally:
        proc.terminate()
        proc.wait(10)
