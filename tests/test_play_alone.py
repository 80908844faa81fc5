"""One remote player plays a role alone against the server's policies (issue 17, part 7).

A reset may name ``opponents``, ``{role: SPEC}`` with any SPEC ``fraudarena evaluate`` takes (a
policy name, or a checkpoint in the server's ``checkpoint_dir``); the server plays those seats
before it answers, so the player's next reply is its own turn or the end. The match it plays is
the match ``Arena.play`` plays in process with the same policies and seed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from fastapi.testclient import TestClient  # noqa: E402
from test_server import assert_error, baselines, live_server, send, without_ids  # noqa: E402,F401

from fraudarena_env.archive import Archive, replay, state_as_archived  # noqa: E402
from fraudarena_env.arena import Arena  # noqa: E402
from fraudarena_env.rules.catalog import ROLES  # noqa: E402
from fraudarena_env.server import Handler, MatchPool, ServerConfig, create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASELINE_OPPONENTS = {"fraudster": "reactive", "auditor": "heuristic"}


@pytest.fixture
def server(request):
    """test_server's live server (uvicorn in a thread), shared by the module."""
    return request.getfixturevalue("live_server")


def in_process(task_id, seed, investigator_face, **policies):
    """The same match played on one referee: the baselines (or ``policies``) in the other
    seats on their tensor face, as the server plays them."""
    faces = {"fraudster": "tensor", "investigator": investigator_face, "auditor": "tensor"}
    return Arena().play(task_id, seed, {**baselines(seed), **policies}, faces=faces)


@pytest.mark.parametrize("task_id,seed", [("task_2", 5), ("task_3", 11)])
def test_a_remote_investigator_alone_on_the_text_face_plays_the_in_process_match(
        server, task_id, seed):
    from fraudarena_env.client import FraudArenaClient

    url, _ = server
    policy = baselines(seed)["investigator"]
    turns = 0
    with FraudArenaClient(url, "investigator") as inv:
        obs = inv.reset(seed=seed, task_id=task_id, opponents=BASELINE_OPPONENTS)
        while not obs.done:
            assert obs.phase == "investigator_turn"  # the server's seats moved before replying
            obs = inv.step(policy.act_model(obs))
            turns += 1
        final = inv.state().model_dump(mode="json")
    expected = in_process(task_id, seed, "text")
    assert turns > 0 and final["phase"] == "done"
    assert without_ids(final) == without_ids(expected.referee.state.model_dump(mode="json"))


@pytest.mark.parametrize("task_id,seed", [("task_1", 3), ("task_3", 11)])
def test_a_remote_investigator_alone_on_the_tensor_face_plays_the_in_process_match(
        server, task_id, seed):
    from fraudarena_env.client import RemoteFraudArena

    url, _ = server
    policy = baselines(seed)["investigator"]
    env = RemoteFraudArena(url, "investigator", task_id=task_id, opponents=BASELINE_OPPONENTS)
    env.reset(seed=seed)
    total, steps = 0.0, 0
    for _agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        total += reward
        if not (terminated or truncated):
            steps += 1
        env.step(None if terminated or truncated else policy.act(obs))
    final = env.client.state().model_dump(mode="json")
    env.close()
    expected = in_process(task_id, seed, "tensor")
    assert steps > 0
    assert total == pytest.approx(expected.returns["investigator"])
    assert without_ids(final) == without_ids(expected.referee.state.model_dump(mode="json"))


def test_a_checkpoint_in_the_servers_directory_can_be_an_opponent(tmp_path):
    pytest.importorskip("sb3_contrib")
    from fraudarena_env.client import decode_observation
    from fraudarena_env.sb3 import SB3Policy

    shutil.copy(REPO / "training" / "checkpoints" / "fraudster.zip", tmp_path)
    seed, task_id = 8, "task_3"
    policy = baselines(seed)["investigator"]
    with TestClient(create_app(checkpoint_dir=str(tmp_path))) as client, \
            client.websocket_connect("/ws/investigator") as inv:
        data = send(inv, "reset", {"seed": seed, "task_id": task_id, "obs_format": "tensor",
                                   "opponents": {"fraudster": "fraudster.zip",
                                                 "auditor": "heuristic"}})["data"]
        while not data["done"]:
            obs = decode_observation("investigator", data)
            data = send(inv, "step", {"action_index": int(policy.act(obs))})["data"]
        final = send(inv, "state")["data"]
    fraudster = SB3Policy.load(tmp_path / "fraudster.zip", "fraudster")
    expected = in_process(task_id, seed, "tensor", fraudster=fraudster)
    assert without_ids(final) == without_ids(expected.referee.state.model_dump(mode="json"))


def ask(handler, kind, data=None):
    return json.loads(handler.handle(json.dumps({"type": kind, "data": data or {}})))


@pytest.mark.parametrize("opponents,needle", [
    ({"fraudster": "no_such_policy"}, "unknown fraudster opponent"),
    ({"investigator": "scripted"}, "opponents may name"),
    ({"fraudster": "reactive", "auditor": "heuristic", "investigator": "scripted"},
     "opponents may name"),
    ({"fraudster": 7}, "SPEC string"),
    (["reactive"], "must be an object"),
    ({"fraudster": "../training/checkpoints/fraudster.zip"}, "no checkpoint directory"),
])
def test_a_reset_naming_bad_opponents_is_refused_and_creates_nothing(opponents, needle):
    pool = MatchPool(ServerConfig(), Archive(None))
    reply = ask(Handler(pool, "investigator"), "reset", {"opponents": opponents})
    assert reply["data"]["code"] == "reset_error" and needle in reply["data"]["message"]
    assert len(pool) == 0


def test_a_checkpoint_outside_the_servers_directory_is_refused(tmp_path):
    (tmp_path / "inside").mkdir()
    pool = MatchPool(ServerConfig(checkpoint_dir=str(tmp_path / "inside")), Archive(None))
    shutil.copy(REPO / "training" / "checkpoints" / "fraudster.zip", tmp_path)
    for spec in ("../fraudster.zip", str(tmp_path / "fraudster.zip"), "missing.zip"):
        reply = ask(Handler(pool, "auditor"), "reset", {"opponents": {"fraudster": spec}})
        assert reply["data"]["code"] == "reset_error", spec
        assert str(tmp_path) not in reply["data"]["message"]  # no server paths in replies
    assert len(pool) == 0


def test_a_checkpoint_name_the_file_system_cannot_hold_is_refused_not_a_fault(tmp_path):
    """A NUL byte and a 256-character name raised ValueError and OSError out of the handler: the
    socket got fatal_error and was closed, and a REST creation answered 500."""
    pool = MatchPool(ServerConfig(checkpoint_dir=str(tmp_path)), Archive(None))
    for spec in ("a\x00b.zip", "x" * 256, "x" * 252 + ".zip"):
        reply = ask(Handler(pool, "auditor"), "reset", {"opponents": {"fraudster": spec}})
        assert reply["data"]["code"] == "reset_error", spec
    assert len(pool) == 0

def test_every_spelling_of_one_checkpoint_shares_one_opponent_factory(tmp_path):
    """Opponent factories were kept by the SPEC as the client spelled it: "fraudster",
    "./fraudster.zip", ".//fraudster.zip", "././fraudster" ... each built and kept another
    for as long as the server ran, so one client could grow its memory without bound (and a
    refused reset built one too)."""
    pytest.importorskip("sb3_contrib")
    shutil.copy(REPO / "training" / "checkpoints" / "fraudster.zip", tmp_path)
    pool = MatchPool(ServerConfig(checkpoint_dir=str(tmp_path)), Archive(None))
    spellings = ["fraudster.zip", "fraudster", "./fraudster.zip", ".//fraudster.zip",
                 *("./" * n + "fraudster" for n in range(2, 60))]
    for spec in spellings:
        reply = ask(Handler(pool, "investigator"), "reset",
                    {"opponents": {"fraudster": spec, "auditor": "heuristic"}})
        assert reply["type"] == "observation", spec
        assert pool.get(reply["data"]["match_id"]).opponents["fraudster"] == spec
    assert len(pool._factories) == 2  # the checkpoint's, and the heuristic auditor's



def test_a_seat_the_server_plays_cannot_be_joined_and_its_moves_are_archived():
    pool = MatchPool(ServerConfig(), Archive(None))
    inv = Handler(pool, "investigator")
    data = ask(inv, "reset", {"seed": 2, "task_id": "task_1", "opponents": BASELINE_OPPONENTS})
    assert data["data"]["phase"] == "investigator_turn"
    match_id = data["data"]["match_id"]
    for role in ("fraudster", "auditor"):
        reply = ask(Handler(pool, role), "join", {"match_id": match_id})
        assert reply["data"]["code"] == "role_taken" and "played by the server" in \
            reply["data"]["message"]
    policy = baselines(2)["investigator"]
    from fraudarena_env.client import decode_observation

    while not data["data"]["done"]:
        obs = decode_observation("investigator", ask(inv, "obs")["data"])
        data = ask(inv, "step", policy.act_model(obs).model_dump(mode="json",
                                                                   exclude_none=True))
    record = pool.archive.get(match_id)
    assert record["opponents"] == BASELINE_OPPONENTS
    assert {a["role"] for a in record["actions"]} == set(ROLES)
    assert state_as_archived(replay(record), record) == record["state"]


def test_the_docs_play_one_role_alone_as_printed(server, capsys):
    """docs/server.md's example of playing alone, run as printed but for the server's address
    (tests/test_docs.py leaves it to this test): it plays the match ``fraudarena evaluate`` plays
    with the same policies and seed."""
    url, _ = server
    text = (REPO / "docs" / "server.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    example = next(b for b in blocks if "opponents=" in b and "RemoteFraudArena" in b)
    assert "ws://127.0.0.1:8000" in example
    scope: dict = {}
    exec(compile(example.replace("ws://127.0.0.1:8000", url), "docs/server.md", "exec"), scope)
    printed = float(capsys.readouterr().out.split()[-1])
    assert printed == pytest.approx(in_process("task_3", 7, "tensor").returns["investigator"])
    assert scope["env"].client is None  # closed


def test_the_servers_seats_move_one_per_turn_of_the_event_loop():
    """An auditor alone waits for a whole match of the other two seats: that must not hold up
    every other socket, so the server moves them one per turn of its event loop."""
    import asyncio

    from fraudarena_env.server import Later

    pool = MatchPool(ServerConfig(), Archive(None))
    handler = Handler(pool, "auditor", cooperative=True)
    later = handler.handle(json.dumps({"type": "reset", "data": {
        "seed": 2, "task_id": "task_1",
        "opponents": {"fraudster": "reactive", "investigator": "scripted"}}}))
    assert isinstance(later, Later) and not later.entry.actions
    turns = []

    async def main():
        done = asyncio.Event()

        async def another_socket():
            while not done.is_set():
                turns.append(len(later.entry.actions))
                await asyncio.sleep(0)

        other = asyncio.create_task(another_socket())
        reply = await handler.complete(later)
        done.set()
        await other
        return reply

    reply = json.loads(asyncio.run(main()))
    moves = len(later.entry.actions)
    assert reply["data"]["phase"] == "audit_phase" and moves > 20
    # the other socket ran after every move (the first came before it started)
    assert sorted(set(turns)) == list(range(1, moves + 1))


def test_the_servers_moves_for_a_socket_spend_its_rate_limit():
    """A player alone could otherwise make the server play whole matches for free; each move
    the server makes for a socket spends a token of that socket's bucket, and waits for one."""
    import asyncio
    import time

    from fraudarena_env.server_limits import TokenBucket

    pool = MatchPool(ServerConfig(), Archive(None))
    handler = Handler(pool, "auditor", cooperative=True)
    later = handler.handle(json.dumps({"type": "reset", "data": {
        "seed": 2, "task_id": "task_1",
        "opponents": {"fraudster": "reactive", "investigator": "scripted"}}}))
    bucket = TokenBucket(rate=100.0, burst=5)
    start = time.monotonic()
    reply = json.loads(asyncio.run(handler.complete(later, bucket)))
    elapsed = time.monotonic() - start
    moves = len(later.entry.actions)
    assert reply["data"]["phase"] == "audit_phase" and moves > 20
    # the burst, then one move per token (unthrottled, the moves take a fraction of this)
    assert elapsed >= 0.9 * (moves - 5) / 100.0
