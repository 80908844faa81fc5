"""The WebSocket adapter (fraudarena_env.server) and its client (fraudarena_env.client).

Most tests run the app in-process through Starlette's TestClient (no network). The last group
starts uvicorn on a free local port in a background thread and drives it with the real
``FraudArenaClient``; it is skipped when no port can be bound.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from fraudarena_env.arena import Arena  # noqa: E402
from fraudarena_env.catalog import PHASE_ROLE, ROLES  # noqa: E402
from fraudarena_env.encoding import N_ACTIONS, OPS, Observer  # noqa: E402
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
from fraudarena_env.server import ERROR_CODES, create_app  # noqa: E402

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
    assert set(reply["data"]) == {"message", "code"}
    assert reply["data"]["code"] == code, reply
    assert reply["data"]["message"]
    return reply["data"]["message"]


def state_of(ws):
    reply = send(ws, "state")
    assert reply["type"] == "state"
    return reply["data"]


@pytest.fixture
def client():
    with TestClient(create_app()) as c:
        yield c


# ============================================================================ a whole match
@pytest.mark.parametrize("task_id,seed", [("task_3", 11)])
def test_full_match_over_three_sockets_matches_in_process(client, task_id, seed):
    policies = baselines(seed)
    actions = []
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv, \
            client.websocket_connect("/ws/auditor") as aud:
        socks = {"fraudster": fr, "investigator": inv, "auditor": aud}
        first = send(fr, "reset", {"seed": seed, "task_id": task_id, "max_rounds": None})
        assert first["type"] == "observation"
        data = first["data"]
        match_id = data["match_id"]
        for key in EXTRA_KEYS:
            assert key in data
        assert data["role"] == "fraudster" and data["phase"] == "fraudster_turn"
        for role in ("investigator", "auditor"):
            joined = send(socks[role], "join", {"match_id": match_id})
            assert joined["type"] == "observation"
            assert joined["data"]["match_id"] == match_id and joined["data"]["role"] == role
        listed = client.get("/matches").json()["active_matches"]
        assert listed[match_id]["connected_roles"] == sorted(ROLES)
        assert listed[match_id]["done"] is False

        phase = data["phase"]
        while phase != "done":
            role = PHASE_ROLE[phase]
            obs = OBS_MODELS[role].model_validate(send(socks[role], "obs")["data"])
            action = policies[role].act_model(obs)
            reply = send(socks[role], "step", action.model_dump(mode="json", exclude_none=True))
            assert reply["type"] == "observation", reply
            actions.append((role, action))
            phase = reply["data"]["phase"]
            assert len(actions) < 2000
        final = state_of(inv)
        assert final["match_id"] == match_id and final["phase"] == "done"
        assert client.get("/matches").json()["active_matches"][match_id]["done"] is True
        # Every role sees the end.
        for ws in socks.values():
            assert send(ws, "obs")["data"]["done"] is True
    # Over and nobody attached: the match is dropped.
    assert match_id not in client.get("/matches").json()["active_matches"]

    ref = Referee()
    ref.reset_match(seed=seed, task_id=task_id)
    for role, action in actions:
        getattr(ref, f"step_as_{role}")(action)
    expected = ref.state.model_dump(mode="json")
    assert final == expected
    assert (final["fraudster_reward"], final["investigator_reward"], final["auditor_reward"]) \
        == tuple(ref.totals)
    # The same baselines playing in-process (text face) reach the same outcome.
    result = Arena().play(task_id, seed, baselines(seed), faces=dict.fromkeys(ROLES, "text"))
    assert result.returns == {"fraudster": final["fraudster_reward"],
                              "investigator": final["investigator_reward"],
                              "auditor": final["auditor_reward"]}
    assert result.steps == len(actions)


# ============================================================================ error codes
def test_every_client_reachable_error_code(client):
    seen = set()
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv:
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

        match_id = send(fr, "reset", {"seed": 5, "task_id": "task_1"})["data"]["match_id"]
        send(inv, "join", {"match_id": match_id})
        before = state_of(fr)
        msg = assert_error(send(fr, "step", {"action_type": "fly"}), "validation_error")
        assert "FraudsterAction" in msg and "action_type" in msg  # pydantic's own message
        seen.add("validation_error")
        assert_error(send(inv, "step", {"action_type": "end_turn"}), "phase_violation")
        seen.add("phase_violation")
        msg = assert_error(send(fr, "step", {"action_type": "modify_pending_ad", "slot_index": 3,
                                             "edit": "soften_copy"}), "execution_error")
        assert "slot_index 3" in msg
        seen.add("execution_error")
        assert state_of(fr) == before  # nothing above changed the match
        # The socket is still usable after every error.
        assert send(fr, "step", {"action_type": "end_turn"})["type"] == "observation"
        assert state_of(inv)["phase"] == "investigator_turn"
    assert seen == set(ERROR_CODES) - {"fatal_error"}


def test_illegal_steps_leave_the_match_unchanged(client):
    with client.websocket_connect("/ws/fraudster") as fr, \
            client.websocket_connect("/ws/investigator") as inv:
        match_id = send(fr, "reset", {"seed": 9, "task_id": "task_2"})["data"]["match_id"]
        obs_before = send(inv, "join", {"match_id": match_id})["data"]
        allowed = send(fr, "obs")["data"]["allowed_categories"]
        from fraudarena_env.catalog import CATEGORIES

        banned = next(c.name for c in CATEGORIES if c.name not in allowed)
        before = state_of(fr)
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
        assert state_of(fr) == before
        assert send(inv, "obs")["data"] == obs_before
        # After the match ends, any step is a phase violation.
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
        before = state_of(fr)
        cases = [
            ("null", "invalid_json"), ('"hello"', "invalid_json"), ("[1]", "invalid_json"),
            ("[" * 100_000, "invalid_json"), ('{"type": 5}', "unknown_type"),
            ('{"data": {}}', "unknown_type"),
            ('{"type": "obs", "data": "x"}', "validation_error"),
            ('{"type": "obs", "data": {"obs_format": "xml"}}', "validation_error"),
            ('{"type": "reset", "data": [1]}', "reset_error"),
            ('{"type": "reset", "data": {"seed": -1}}', "reset_error"),
            ('{"type": "reset", "data": {"seed": "7"}}', "reset_error"),
            ('{"type": "reset", "data": {"seed": true}}', "reset_error"),
            ('{"type": "reset", "data": {"episode_id": 5}}', "reset_error"),
            ('{"type": "reset", "data": {"max_rounds": 0}}', "reset_error"),
            ('{"type": "reset", "data": {"allowed_categories": [[1]]}}', "reset_error"),
            ('{"type": "reset", "data": {"allowed_categories": []}}', "reset_error"),
            ('{"type": "reset", "data": {"task_id": ["task_1"]}}', "reset_error"),
            ('{"type": "reset", "data": {"obs_format": "xml"}}', "reset_error"),
            ('{"type": "join", "data": {"match_id": ["x"]}}', "missing_match_id"),
            ('{"type": "step", "data": {"action_index": "1"}}', "validation_error"),
        ]
        for text, code in cases:
            assert_error(send_raw(fr, text), code)
        fr.send_bytes(b"\xff\xfe")
        assert_error(fr.receive_json(), "invalid_json")
        fr.send_bytes(json.dumps({"type": "state", "data": {}}).encode())
        assert fr.receive_json()["type"] == "state"  # binary JSON frames are accepted too
        # A failed reset leaves the socket attached to its match.
        assert state_of(fr) == before
        assert list(client.get("/matches").json()["active_matches"]) == [match_id]


def test_internal_fault_is_fatal_error_and_closes_only_that_socket(client):
    app_pool = client.app.state.pool
    with client.websocket_connect("/ws/fraudster") as fr:
        match_id = send(fr, "reset", {"seed": 3})["data"]["match_id"]
        ref = app_pool.get(match_id).referee

        def boom():
            raise RuntimeError("simulated fault")

        ref.build_fraudster_observation = boom
        assert "simulated fault" in assert_error(send(fr, "obs"), "fatal_error")
        with pytest.raises(WebSocketDisconnect) as info:
            fr.receive_json()
        assert info.value.code == 1011
        del ref.build_fraudster_observation
    entry = client.get("/matches").json()["active_matches"][match_id]
    assert entry["connected_roles"] == [] and entry["done"] is False
    with client.websocket_connect("/ws/fraudster") as again:
        assert send(again, "join", {"match_id": match_id})["type"] == "observation"


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
            assert len(d["action_mask"]) == N_ACTIONS[role]
            assert sum(d["action_mask"]) == 0  # not their turn
            np.testing.assert_array_equal(np.float32(d["observation"]), local[role].fill(ref))
        # Off turn, an index step is a phase violation.
        assert_error(send(inv, "step", {"action_index": N_ACTIONS["investigator"] - 1}),
                     "phase_violation")
        # A legal index works and matches the in-process referee.
        mask = np.int8(data["action_mask"])
        k = int(np.flatnonzero(mask)[0])
        reply = send(fr, "step", {"action_index": k})
        assert reply["type"] == "observation"
        ref.apply("fraudster", OPS["fraudster"][k])
        np.testing.assert_array_equal(np.float32(reply["data"]["observation"]),
                                      local["fraudster"].fill(ref))
        assert state_of(fr) == {**ref.state.model_dump(mode="json"), "match_id": match_id}
        # Masked, out-of-range and malformed indices are refused; the match is unchanged.
        before = state_of(fr)
        masked = int(np.flatnonzero(np.int8(reply["data"]["action_mask"]) == 0)[0])
        msg = assert_error(send(fr, "step", {"action_index": masked}), "execution_error")
        assert f"action_index {masked}" in msg
        for bad in (N_ACTIONS["fraudster"], -1, 1.0, True, None):
            assert_error(send(fr, "step", {"action_index": bad}), "validation_error")
        assert_error(send(fr, "step", {"action_index": k, "action_type": "end_turn"}),
                     "validation_error")
        assert state_of(fr) == before
        # The format is per socket and can be switched back.
        plain = send(fr, "obs", {"obs_format": "json"})["data"]
        assert "observation" not in plain and "action_mask" not in plain
        assert "observation" in send(inv, "obs")["data"]
        # One Observer per role per match, kept in the pool entry.
        entry = client.app.state.pool.get(match_id)
        assert set(entry.observers) == set(ROLES)


# ============================================================================ ids and the pool
def test_match_ids_are_deterministic_and_never_collide(client):
    with client.websocket_connect("/ws/fraudster") as a, \
            client.websocket_connect("/ws/fraudster") as b, \
            client.websocket_connect("/ws/fraudster") as c, \
            client.websocket_connect("/ws/fraudster") as d, \
            client.websocket_connect("/ws/fraudster") as e:
        cfg = {"seed": 21, "task_id": "task_2", "max_rounds": 3}
        first = send(a, "reset", cfg)["data"]["match_id"]
        ref = Referee()
        ref.reset_match(**cfg)
        assert first == ref.match_id
        assert send(b, "reset", cfg)["data"]["match_id"] == f"{first}-2"
        assert send(c, "reset", cfg)["data"]["match_id"] == f"{first}-3"
        assert state_of(c)["match_id"] == f"{first}-3"
        assert send(d, "reset", {**cfg, "episode_id": "ep-A"})["data"]["match_id"] == "ep-A"
        assert send(e, "reset", {**cfg, "episode_id": "ep-A"})["data"]["match_id"] == "ep-A-2"
        assert state_of(e)["episode_id"] == "ep-A"
        listed = client.get("/matches").json()["active_matches"]
        assert set(listed) == {first, f"{first}-2", f"{first}-3", "ep-A", "ep-A-2"}
        # Same seed, same match: the copies are identical apart from their ids.
        sa, sb = state_of(a), state_of(b)
        assert {**sa, "match_id": ""} == {**sb, "match_id": ""}


def test_pool_is_bounded_and_cleans_up():
    with TestClient(create_app(max_matches=1, idle_timeout=None)) as client:
        with client.websocket_connect("/ws/fraudster") as a, \
                client.websocket_connect("/ws/fraudster") as b:
            first = send(a, "reset", {"seed": 1})["data"]["match_id"]
            assert "server is full" in assert_error(send(b, "reset", {"seed": 2}),
                                                    "reset_error")
            # The socket that owns the only match may replace it.
            second = send(a, "reset", {"seed": 2})["data"]["match_id"]
            assert second != first
            assert list(client.get("/matches").json()["active_matches"]) == [second]
            with client.websocket_connect("/ws/investigator") as inv:
                send(inv, "join", {"match_id": second})
                assert client.get("/matches").json()["active_matches"][second][
                    "connected_roles"] == ["fraudster", "investigator"]
            assert client.get("/matches").json()["active_matches"][second][
                "connected_roles"] == ["fraudster"]
            a.send_json({"type": "close", "data": {}})  # no reply: the server closes
            with pytest.raises(WebSocketDisconnect):
                a.receive_json()
            assert client.get("/matches").json()["active_matches"][second][
                "connected_roles"] == []
            # Abandoned but unfinished: it stays joinable, and without an idle timeout it is
            # never evicted.
            assert_error(send(b, "reset", {"seed": 3}), "reset_error")
            assert send(b, "join", {"match_id": second})["type"] == "observation"
        assert client.get("/healthz").json() == {"status": "ok", "matches": 1,
                                                 "max_matches": 1}

    with TestClient(create_app(max_matches=1, idle_timeout=0)) as client:
        with client.websocket_connect("/ws/fraudster") as a:
            first = send(a, "reset", {"seed": 1})["data"]["match_id"]
        with client.websocket_connect("/ws/auditor") as b:
            second = send(b, "reset", {"seed": 2})["data"]["match_id"]
            assert list(client.get("/matches").json()["active_matches"]) == [second]
            assert_error(send(b, "join", {"match_id": first}), "unknown_match")

    with pytest.raises(ValueError):
        create_app(max_matches=0)


# ============================================================================ real network
@pytest.fixture(scope="module")
def live_server():
    uvicorn = pytest.importorskip("uvicorn")
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind a local port: {exc}")
    port = sock.getsockname()[1]
    app = create_app(max_matches=16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            pytest.skip("uvicorn did not start")
        time.sleep(0.01)
    yield f"ws://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_client_plays_a_match_against_a_live_server(live_server):
    from fraudarena_env.client import FraudArenaClient, ServerError

    seed, task_id = 13, "task_1"
    policies = baselines(seed)
    with FraudArenaClient(live_server, "fraudster") as fr, \
            FraudArenaClient(live_server + "/", "investigator") as inv, \
            FraudArenaClient(live_server.replace("ws://", "http://") + "/ws/auditor",
                             "auditor") as aud:
        clients = {"fraudster": fr, "investigator": inv, "auditor": aud}
        obs = fr.reset(seed=seed, task_id=task_id)
        assert isinstance(obs, FraudsterObservation)
        assert isinstance(inv.join(fr.match_id), InvestigatorObservation)
        assert isinstance(aud.join(fr.match_id), AuditorObservation)
        with pytest.raises(ServerError) as err:
            inv.step({"action_type": "end_turn"})
        assert err.value.code == "phase_violation"
        with pytest.raises(ServerError) as err:
            fr.step({"action_type": "nope"})
        assert err.value.code == "validation_error"
        phase = obs.phase
        while phase != "done":
            role = PHASE_ROLE[phase]
            c = clients[role]
            phase = c.step(policies[role].act_model(c.observe())).phase
        final = aud.state()
        assert final.match_id == fr.match_id and final.phase == "done"
    result = Arena().play(task_id, seed, baselines(seed), faces=dict.fromkeys(ROLES, "text"))
    assert (final.fraudster_reward, final.investigator_reward, final.auditor_reward) == \
        (result.returns["fraudster"], result.returns["investigator"], result.returns["auditor"])


def test_client_tensor_face_against_a_live_server(live_server):
    from fraudarena_env.client import FraudArenaClient, ServerError

    with FraudArenaClient(live_server, "fraudster", obs_format="tensor") as fr:
        obs = fr.reset(seed=8, task_id="task_2", episode_id="tensor-demo")
        assert fr.match_id == "tensor-demo"
        assert obs["observation"].dtype == np.float32
        assert obs["observation"].shape == (Observer("fraudster").size,)
        assert obs["action_mask"].shape == (N_ACTIONS["fraudster"],)
        k = ReactiveFraudster(seed=8).act(obs)  # the policies take the dict as is
        obs = fr.step(np.int64(k))
        masked = int(np.flatnonzero(obs["action_mask"] == 0)[0])
        with pytest.raises(ServerError) as err:
            fr.step(masked)
        assert err.value.code == "execution_error"
        assert isinstance(fr.observe(obs_format="json"), FraudsterObservation)
        assert fr.state().step_count == 1


def test_concurrent_steps_on_one_match_are_serialised(live_server):
    from fraudarena_env.client import FraudArenaClient, ServerError

    with FraudArenaClient(live_server, "fraudster") as a, \
            FraudArenaClient(live_server, "fraudster") as b:
        a.reset(seed=31, task_id="task_1")
        b.join(a.match_id)
        barrier = threading.Barrier(2)
        outcomes = []

        def end_turn(c):
            barrier.wait(5)
            try:
                c.step({"action_type": "end_turn"})
                outcomes.append("ok")
            except ServerError as exc:
                outcomes.append(exc.code)

        threads = [threading.Thread(target=end_turn, args=(c,)) for c in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(outcomes) == ["ok", "phase_violation"]
        assert a.state().step_count == 1
