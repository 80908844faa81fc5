"""Nothing acknowledged is lost (issue 17, part 4): the SQLite store of archived matches and the
journal of live ones, under torn writes, a full disk, restarts and ``kill -9``."""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import re
import shutil
import signal
import sqlite3
import threading
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from fastapi.testclient import TestClient  # noqa: E402
from test_server import (  # noqa: E402
    assert_error,
    baselines,
    free_port,
    send,
    spawn_or_skip,
    without_ids,
)

from fraudarena_env.archive import (  # noqa: E402
    DB_FILE,
    Archive,
    DamagedRecord,
    StorageError,
    Store,
    read_archive,
    read_jsonl,
    read_records,
    replay,
    state_as_archived,
)
from fraudarena_env.archive import summary as archive_summary  # noqa: E402
from fraudarena_env.arena import Arena  # noqa: E402
from fraudarena_env.client import decode_observation  # noqa: E402
from fraudarena_env.journal import token_hash  # noqa: E402
from fraudarena_env.rules.catalog import PHASE_ROLE, ROLES, TASK_IDS  # noqa: E402
from fraudarena_env.server import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASELINE_OPPONENTS = {"fraudster": "reactive", "auditor": "heuristic"}


def record_of(i: int) -> dict:
    """A small archive record (the store does not care what the state holds)."""
    return {"match_id": f"m_{i:03d}", "episode_id": f"e_{i}", "reason": "finished",
            "archived_at": 1000.0 + i, "reset": {"seed": i, "task_id": "task_1"},
            "actions": [], "state": {"phase": "done", "step_count": 0, "pad": "x" * 3000}}


# ============================================================================ torn writes
def test_a_torn_write_costs_only_its_own_record_never_a_later_one(tmp_path):
    """The store as a killed server leaves it, its log cut in the middle of the last record's
    write: that record is gone, every one before it is whole, and records written after the
    restart are kept."""
    live = tmp_path / "live"
    archive = Archive(live)
    wal = live / f"{DB_FILE}-wal"
    sizes = []
    for i in range(5):
        archive.append(record_of(i)).result()
        sizes.append(wal.stat().st_size)
    crashed = tmp_path / "crashed"  # a copy of the files mid-run: what a kill leaves on disk
    crashed.mkdir()
    shutil.copy(live / DB_FILE, crashed)
    shutil.copy(wal, crashed)
    archive.close()
    with open(crashed / wal.name, "r+b") as f:
        f.truncate((sizes[3] + sizes[4]) // 2)  # torn inside record 4's frames
    after = Archive(crashed)
    assert [r["match_id"] for r in after.records()] == [f"m_{i:03d}" for i in range(4)]
    assert all(r == record_of(i) for i, r in enumerate(after.records()))
    after.append(record_of(5)).result()
    after.close()
    again = Archive(crashed)
    assert [r["match_id"] for r in again.records()] == [f"m_{i:03d}" for i in (0, 1, 2, 3, 5)]
    assert len(again) == 5
    again.close()


WRITER = """
import sys
from fraudarena_env.archive import Archive
archive = Archive(sys.argv[1])
i = 0
while True:
    archive.insert({"match_id": f"m_{i:06d}", "episode_id": f"e_{i}", "reason": "finished",
                    "archived_at": float(i), "reset": {}, "actions": [],
                    "state": {"pad": "y" * 5000}})
    print(i, flush=True)
    i += 1
"""


def test_a_writer_killed_mid_write_keeps_every_committed_record(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    committed = -1
    for line in proc.stdout:  # each number printed is a commit that returned
        committed = int(line)
        if committed >= 150:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    archive = Archive(tmp_path)
    ids = [r["match_id"] for r in archive.records()]
    assert len(ids) >= committed + 1  # nothing acknowledged lost (one more may have landed)
    assert ids == [f"m_{i:06d}" for i in range(len(ids))]
    archive.insert({**record_of(999), "match_id": "m_after"})
    archive.close()
    assert [r["match_id"] for r in read_records(tmp_path)][-1] == "m_after"


def test_a_torn_line_in_an_old_jsonl_archive_costs_no_later_record(tmp_path):
    """The old server appended the next record onto a torn line; the import keeps it."""
    lines = [json.dumps(record_of(i), separators=(",", ":")) for i in range(3)]
    torn = lines[1][: len(lines[1]) // 2]
    (tmp_path / "matches.jsonl").write_text(f"{lines[0]}\n{torn}{lines[1]}\n{lines[2]}\n"
                                            '{"match_id":"m_cut","actions":[')
    assert [r["match_id"] for r in read_jsonl(tmp_path / "matches.jsonl")] == \
        ["m_000", "m_001", "m_002"]
    archive = Archive(tmp_path)
    assert [r["match_id"] for r in archive.records()] == ["m_000", "m_001", "m_002"]
    assert not (tmp_path / "matches.jsonl").exists()
    assert (tmp_path / "matches.jsonl.imported").exists()
    archive.close()


def test_one_server_at_a_time_may_use_a_data_directory(tmp_path):
    first = Store(tmp_path)
    with pytest.raises(StorageError, match="another fraudarena server"):
        Store(tmp_path)
    first.close()
    Store(tmp_path).close()


def test_a_server_that_fails_to_start_leaves_its_data_directory_free(tmp_path, monkeypatch):
    """A failed start (here a restart whose journal cannot be read at all) left the store's
    lock held, so nothing in the same process could use the directory after it."""
    from fraudarena_env.server import MatchPool

    def fail(pool):
        raise RuntimeError("the journal cannot be read")

    monkeypatch.setattr(MatchPool, "recover", fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(RuntimeError, match="journal cannot be read") as failed:
            create_app(data_dir=str(tmp_path))
        Store(tmp_path).close()  # (the failed start's frames, in ``failed``, are still alive)
        del failed
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_refused_write_stores_none_of_its_transaction(tmp_path):
    archive = Archive(tmp_path)
    archive.insert(record_of(0))
    with pytest.raises(StorageError):
        with archive.store.transaction():
            archive.insert(record_of(1))
            archive.store.conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert [r["match_id"] for r in archive.records()] == ["m_000"]
    assert archive.store.last_error is not None
    archive.insert(record_of(2))
    assert archive.store.last_error is None
    archive.close()


# ============================================================================ restarts
def play_some(client, match_id, sockets, policies, steps):
    """``steps`` moves of the baselines on the tensor face; returns the last reply's data."""
    data = send(sockets["fraudster"], "obs")["data"]
    for _ in range(steps):
        role = PHASE_ROLE.get(data["phase"])
        if role is None:
            break
        obs = send(sockets[role], "obs")["data"]
        action = policies[role].act(decode_observation(role, obs))
        data = send(sockets[role], "step", {"action_index": int(action)})["data"]
        assert "match_id" in data, data
    return data


def open_seats(client, stack):
    """A socket per role, closed by ``stack`` (a test client waits for open sockets to close
    before it stops, so a failing test must close them)."""
    return {role: stack.enter_context(client.websocket_connect(f"/ws/{role}")) for role in ROLES}


def test_a_restart_resumes_live_matches_and_seat_tokens_take_the_seats_back(tmp_path):
    seed, task_id = 21, "task_2"
    policies = baselines(seed)
    with TestClient(create_app(data_dir=str(tmp_path))) as client, ExitStack() as stack:
        sockets = open_seats(client, stack)
        first = send(sockets["fraudster"], "reset", {"seed": seed, "task_id": task_id,
                                                     "obs_format": "tensor"})["data"]
        match_id, tokens = first["match_id"], {"fraudster": first["seat_token"]}
        for role in ("investigator", "auditor"):
            tokens[role] = send(sockets[role], "join", {"match_id": match_id,
                                                        "obs_format": "tensor"})["data"][
                "seat_token"]
        play_some(client, match_id, sockets, policies, 25)
        before = client.app.state.pool.get(match_id).referee.state.model_dump(mode="json")
        stack.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(DB_FILE))
    for token in tokens.values():  # only their hashes are stored
        assert token.encode() not in stored and token_hash(token).encode() in stored
    with TestClient(create_app(data_dir=str(tmp_path))) as client, ExitStack() as stack:
        pool = client.app.state.pool
        assert pool.get(match_id).referee.state.model_dump(mode="json") == before
        health = client.get("/healthz").json()
        assert health["journaled"] == 1 and health["live"] == 1 and health["status"] == "ok"
        with client.websocket_connect("/ws/investigator") as thief:
            assert_error(send(thief, "join", {"match_id": match_id}), "role_taken")
            assert_error(send(thief, "join", {"match_id": match_id,
                                              "seat_token": tokens["auditor"]}), "role_taken")
        sockets = open_seats(client, stack)
        for role in ROLES:
            send(sockets[role], "join", {"match_id": match_id, "seat_token": tokens[role],
                                         "obs_format": "tensor"})
        assert play_some(client, match_id, sockets, policies, 10**4)["done"]
        stack.close()
        record = pool.archive.get(match_id)
    expected = Arena().play(task_id, seed, baselines(seed), faces=dict.fromkeys(ROLES, "tensor"))
    assert without_ids(record["state"]) == without_ids(
        expected.referee.state.model_dump(mode="json"))
    assert state_as_archived(replay(record), record) == record["state"]
    conn = sqlite3.connect(tmp_path / DB_FILE)
    assert conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 0  # the journal is gone
    conn.close()


def test_a_journal_the_code_no_longer_replays_is_kept_and_logged(tmp_path, caplog):
    with TestClient(create_app(data_dir=str(tmp_path))) as client, \
            client.websocket_connect("/ws/fraudster") as fr:
        match_id = send(fr, "reset", {"seed": 3, "task_id": "task_1"})["data"]["match_id"]
        send(fr, "step", {"action_type": "end_turn"})
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("UPDATE steps SET seq = 5")  # a gap: action 0 is missing
    conn.commit()
    conn.close()
    with caplog.at_level(logging.ERROR, "fraudarena_env.server"), \
            TestClient(create_app(data_dir=str(tmp_path))) as client:
        assert client.app.state.pool.get(match_id) is None
        assert client.get("/healthz").json()["journaled"] == 1  # kept, not thrown away
    assert any(match_id in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


DAMAGE = {  # one match's journal rows, damaged (by hand, or by the disk)
    "setup not JSON": "UPDATE live SET setup = '{\"reset\":' WHERE match_id = ?",
    "setup not an object": "UPDATE live SET setup = '[]' WHERE match_id = ?",
    "setup without reset": "UPDATE live SET setup = json_remove(setup, '$.reset') "
                           "WHERE match_id = ?",
    "opponents not an object": "UPDATE live SET setup = json_set(setup, '$.opponents', "
                               "json('[1]')) WHERE match_id = ?",
    "address not text": "UPDATE live SET setup = json_set(setup, '$.address', json('[1]')) "
                        "WHERE match_id = ?",
    "creator of no role": "UPDATE live SET setup = json_set(setup, '$.creator_role', 'admin') "
                          "WHERE match_id = ?",
    "action not JSON": "UPDATE steps SET action = '{' WHERE match_id = ?",
    "action not an object": "UPDATE steps SET action = '[1]' WHERE match_id = ?",
    "action index past the catalogue": "UPDATE steps SET action = '{\"action_index\":99999}' "
                                       "WHERE match_id = ?",
    "negative action index": "UPDATE steps SET action = '{\"action_index\":-1}' "
                             "WHERE match_id = ?",
    "seat of no role": "INSERT INTO seats VALUES (?, 'admin', 'x')",
    # (these two stopped the server from starting: the referee took any keyword, and a
    # RecursionError is no ValueError)
    "reset with what no client sets": "UPDATE live SET setup = json_set(setup, "
                                      "'$.reset.episode', 1) WHERE match_id = ?",
    "setup nested too deep": "UPDATE live SET setup = printf('%.*c', 100000, '[') "
                             "WHERE match_id = ?",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_one_damaged_journal_keeps_only_its_own_match_from_resuming(tmp_path, caplog, damage):
    """The server still starts, resumes every other match, and keeps and logs the damaged one
    (a negative index once read the catalogue's last action)."""
    with TestClient(create_app(data_dir=str(tmp_path))) as client:
        ids = []
        for seed in (3, 4):
            with client.websocket_connect("/ws/fraudster") as fr:
                ids.append(send(fr, "reset", {"seed": seed, "task_id": "task_1"})["data"][
                    "match_id"])
                send(fr, "step", {"action_index": 0})
    damaged, intact = ids
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute(DAMAGE[damage], (damaged,))
    conn.commit()
    conn.close()
    with caplog.at_level(logging.ERROR, "fraudarena_env.server"), \
            TestClient(create_app(data_dir=str(tmp_path))) as client:
        pool = client.app.state.pool
        assert pool.get(damaged) is None and pool.get(intact).referee.step_count == 1
        assert client.get("/healthz").json()["journaled"] == 2  # kept, not thrown away
    assert any(damaged in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# ============================================================================ a damaged record
KEY = "k" * 24
RECORD_DAMAGE = {  # one archived match's row, damaged (by hand, or by the disk): the reason given
    "cut short": ("UPDATE matches SET record = substr(record, 1, length(record) / 2) "
                  "WHERE match_id = ?", "it is not JSON (cut short or overwritten)"),
    "empty": ("UPDATE matches SET record = '' WHERE match_id = ?",
              "it is not JSON (cut short or overwritten)"),
    "bytes, not UTF-8": ("UPDATE matches SET record = x'7bff' WHERE match_id = ?",
                         "it is not JSON (cut short or overwritten)"),
    "NaN": ("UPDATE matches SET record = replace(record, '\"archived_at\":', "
            "'\"archived_at\":NaN,\"was\":') WHERE match_id = ?",
            "it is not JSON (cut short or overwritten)"),
    "nested too deep": ("UPDATE matches SET record = printf('%.*c', 100000, '[') "
                        "WHERE match_id = ?", "its JSON is nested too deep to read"),
    "a list": ("UPDATE matches SET record = '[1]' WHERE match_id = ?",
               "it is a JSON list, not an object"),
    "null": ("UPDATE matches SET record = 'null' WHERE match_id = ?",
             "it is a JSON null, not an object"),
    "a number": ("UPDATE matches SET record = '7' WHERE match_id = ?",
                 "it is a JSON number, not an object"),
    "no actions": ("UPDATE matches SET record = json_remove(record, '$.actions') "
                   "WHERE match_id = ?", "it has no field actions"),
    "no state": ("UPDATE matches SET record = json_remove(record, '$.state') "
                 "WHERE match_id = ?", "it has no field state"),
    "no match_id": ("UPDATE matches SET record = json_remove(record, '$.match_id') "
                    "WHERE match_id = ?", "it has no field match_id"),
    "reset not an object": ("UPDATE matches SET record = json_set(record, '$.reset', 'x') "
                            "WHERE match_id = ?", "its field reset is not an object"),
    "actions not a list": ("UPDATE matches SET record = json_set(record, '$.actions', "
                           "json('{}')) WHERE match_id = ?", "its field actions is not a list"),
    "state not an object": ("UPDATE matches SET record = json_set(record, '$.state', 3) "
                            "WHERE match_id = ?", "its field state is not an object"),
    "archived_at text": ("UPDATE matches SET record = json_set(record, '$.archived_at', 'then') "
                         "WHERE match_id = ?", "its field archived_at is not a number"),
    "episode_id a number": ("UPDATE matches SET record = json_set(record, '$.episode_id', 5) "
                            "WHERE match_id = ?", "its field episode_id is not text"),
    "another match's record": ("UPDATE matches SET record = json_set(record, '$.match_id', "
                               "'m_other') WHERE match_id = ?",
                               "it holds the record of another match"),
    "illegal_action unknown": ("UPDATE matches SET record = json_set(record, "
                               "'$.illegal_action', 'ignore') WHERE match_id = ?",
                               "its field illegal_action is not one of ['penalize', 'raise']"),
    "opponents of no role": ("UPDATE matches SET record = json_set(record, '$.opponents', "
                             "json('{\"admin\":\"random\"}')) WHERE match_id = ?",
                             "its field opponents is not {role: SPEC}"),
    "seat digests not text": ("UPDATE matches SET record = json_set(record, '$.seat_digests', "
                              "json('{\"fraudster\":[1]}')) WHERE match_id = ?",
                              "its field seat_digests is not {role: digest}"),
    "seed_chosen_by_client text": ("UPDATE matches SET record = json_set(record, "
                                   "'$.seed_chosen_by_client', 'yes') WHERE match_id = ?",
                                   "its field seed_chosen_by_client is not true or false"),
    "action of no role": ("UPDATE matches SET record = json_set(record, '$.actions[3].role', "
                          "'admin') WHERE match_id = ?",
                          "its action 3 is not {role: ROLE, action: ACTION}"),
    "action not an object": ("UPDATE matches SET record = json_set(record, '$.actions[0]', 1) "
                             "WHERE match_id = ?",
                             "its action 0 is not {role: ROLE, action: ACTION}"),
}
SUMMARY_DAMAGE = {  # the same for the summary the listing shows
    "cut short": ("UPDATE matches SET summary = substr(summary, 1, 20) WHERE match_id = ?",
                  "it is not JSON (cut short or overwritten)"),
    "a list": ("UPDATE matches SET summary = '[]' WHERE match_id = ?",
               "it is a JSON list, not an object"),
    "no task_id": ("UPDATE matches SET summary = json_remove(summary, '$.task_id') "
                   "WHERE match_id = ?", "it has no field task_id"),
    "phase an object": ("UPDATE matches SET summary = json_set(summary, '$.phase', json('{}')) "
                        "WHERE match_id = ?", "its field phase is not a single value"),
    "another match's summary": ("UPDATE matches SET summary = json_set(summary, '$.match_id', "
                                "'m_other') WHERE match_id = ?",
                                "it holds the summary of another match"),
}
LISTED = ("match_id", "episode_id", "reason", "archived_at", "task_id", "phase", "end_reason",
          "grader_score", "step_count")


@pytest.fixture(scope="module")
def played() -> list[dict]:
    """Two finished matches' records, as ``fraudarena play --archive`` writes them."""
    from fraudarena_env.archive import match_record

    out = []
    for seed in (3, 4):
        actions: list = []
        result = Arena().play("task_1", seed, actions=actions)
        out.append(match_record(result.referee, {"seed": seed, "task_id": "task_1"}, actions))
    return out


def damaged_store(tmp_path, records, sql: str) -> tuple[str, str]:
    """A data directory holding ``records``, the first one's row damaged by ``sql``."""
    archive = Archive(tmp_path)
    for record in records:
        archive.insert(record)
    archive.close()
    damaged, intact = (r["match_id"] for r in records)
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute(sql, (damaged,))
    conn.commit()
    conn.close()
    return damaged, intact


@pytest.mark.parametrize("damage", RECORD_DAMAGE)
def test_a_damaged_archived_record_is_a_410_naming_it_and_costs_no_other_match(
        tmp_path, played, caplog, capsys, damage):
    """Reading it (the record, its page) answers 410 ``damaged_record`` naming the match and
    what is damaged, for every caller; the server starts, lists both, serves the other;
    ``fraudarena export`` skips it and says so, ``fraudarena replay`` names it. It once answered 500 (an unhandled exception)."""
    sql, why = RECORD_DAMAGE[damage]
    damaged, intact = damaged_store(tmp_path, played, sql)
    message = f"the archived record of match {damaged} is damaged: {why}"
    with TestClient(create_app(data_dir=str(tmp_path), api_key=KEY)) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["archived"] == 2
        for path in (f"/api/v1/matches/{damaged}", f"/api/v1/matches/{damaged}/replay.html"):
            for headers in ({"X-API-Key": KEY}, {}, {"X-Seat-Token": "t" * 24}):
                reply = client.get(path, headers=headers)
                assert reply.status_code == 410, (path, reply.text)
                assert reply.json() == {"code": "damaged_record", "match_id": damaged,
                                        "message": f"{message}; the server cannot serve it"}
        assert client.get(f"/api/v1/matches/{intact}", headers={"X-API-Key": KEY}).json()[
            "state"] == played[1]["state"]
        assert client.get(f"/api/v1/matches/{intact}/replay.html",
                          headers={"X-API-Key": KEY}).status_code == 200
        listed = client.get("/api/v1/matches", headers={"X-API-Key": KEY}).json()["archived"]
        assert [(m["match_id"], m["damaged"]) for m in listed] == [(intact, None),
                                                                   (damaged, None)]
    assert any(message in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    archive = Archive(tmp_path)
    with pytest.raises(DamagedRecord, match=re.escape(message)) as raised:
        archive.get(damaged)
    assert [r["match_id"] for r in archive.records()] == [intact]
    archive.close()
    assert (raised.value.match_id, raised.value.reason) == (damaged, why)
    assert pickle.loads(pickle.dumps(raised.value)).args == raised.value.args
    caplog.clear()
    assert [r["match_id"] for r in read_records(tmp_path)] == [intact]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == \
        [f"skipping match {damaged} in {tmp_path}: {message}"]
    from fraudarena_env.cli import main

    assert main(["export", str(tmp_path), str(tmp_path / "out.jsonl")]) == 0
    assert read_records(tmp_path / "out.jsonl") == [played[1]]
    capsys.readouterr()
    assert main(["replay", str(tmp_path), "--match", damaged, "--plain"]) == 1
    assert capsys.readouterr().err == f"fraudarena replay: match {damaged!r} in {tmp_path} " \
        f"cannot be played again: {message}\n"


@pytest.mark.parametrize("damage", SUMMARY_DAMAGE)
def test_a_damaged_summary_is_marked_in_the_listing_and_the_others_listed(
        tmp_path, played, damage):
    sql, why = SUMMARY_DAMAGE[damage]
    damaged, intact = damaged_store(tmp_path, played, sql)
    with TestClient(create_app(data_dir=str(tmp_path), api_key=KEY),
                    headers={"X-API-Key": KEY}) as client:
        reply = client.get("/api/v1/matches")
        assert reply.status_code == 200
        first, second = reply.json()["archived"]
        assert first == {**archive_summary(played[1]), "damaged": None}
        assert second == {**dict.fromkeys(LISTED), "match_id": damaged, "damaged": why}
        # the record itself is intact
        assert client.get(f"/api/v1/matches/{damaged}").json()["state"] == played[0]["state"]


def test_a_record_that_no_longer_plays_again_is_a_410_for_its_page(tmp_path, played, caplog):
    """Whole and well shaped, but its actions do not play (an index past the catalogue, a
    reset argument the referee does not take): the record is served, its page is 410."""
    ids = []
    for n, sql in enumerate((
            "UPDATE matches SET record = json_set(record, '$.actions[0].action', "
            "json('{\"action_index\":99999}')) WHERE match_id = ?",
            "UPDATE matches SET record = json_set(record, '$.reset.colour', 'red') "
            "WHERE match_id = ?")):
        where = tmp_path / str(n)
        ids.append(damaged_store(where, played, sql)[0])
        with TestClient(create_app(data_dir=str(where), api_key=KEY),
                        headers={"X-API-Key": KEY}) as client:
            assert client.get(f"/api/v1/matches/{ids[-1]}").status_code == 200
            page = client.get(f"/api/v1/matches/{ids[-1]}/replay.html")
            assert page.status_code == 410 and page.json()["code"] == "damaged_record"
            assert page.json()["message"].startswith(
                f"the archived record of match {ids[-1]} is damaged: it cannot be played again "
                f"({'IllegalActionError' if n == 0 else 'ValueError'}: ")
            # without a credential, the usual refusal comes first
            assert client.get(f"/api/v1/matches/{ids[-1]}/replay.html",
                              headers={"X-API-Key": ""}).status_code == 401


def test_damaged_records_in_an_old_jsonl_archive_are_skipped_and_the_server_starts(
        tmp_path, caplog):
    """A state that is not an object once crashed the import, and so the server's start."""
    lines = [record_of(0), {**record_of(1), "state": "x"}, {**record_of(2), "archived_at": {}},
             {**record_of(3), "actions": None}, record_of(4)]
    # a number the store cannot keep, and a line nested past Python's stack, each stopped the
    # server's start, on every restart
    unkept = [{**record_of(5), "archived_at": float("nan")}, {**record_of(6), "archived_at": 10**20}]
    (tmp_path / "matches.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines + unkept) + "[" * 100000 + "\n")
    with caplog.at_level(logging.WARNING, "fraudarena_env.archive"), \
            TestClient(create_app(data_dir=str(tmp_path), open_api=True)) as client:
        assert client.get("/healthz").json()["archived"] == 2
        assert [m["match_id"] for m in client.get("/api/v1/matches").json()["archived"]] == \
            ["m_004", "m_000"]
    legacy = tmp_path / "matches.jsonl"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and
            r.getMessage().startswith("not importing")][:3] == [
        f"not importing match m_001 from {legacy}: its record is damaged: its field state is "
        "not an object",
        f"not importing match m_002 from {legacy}: its record is damaged: its field archived_at "
        "is not a number",
        f"not importing match m_003 from {legacy}: its record is damaged: its field actions is "
        "not a list"]
    assert sum("its field archived_at is not a number" in r.getMessage()
               for r in caplog.records) == 3


# ============================================================================ a full disk
def fill_the_disk(store):
    """Fault injection: SQLite answers every write that needs one more page as a full disk
    (SQLITE_FULL, the error a full file system gives it)."""
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")


def free_the_disk(store):
    store.conn.execute("PRAGMA max_page_count = 1073741823")


def test_a_full_disk_answers_every_client_and_loses_nothing_acknowledged(tmp_path, caplog):
    seeds, task_id = (41, 42, 43), "task_3"
    policies = {seed: baselines(seed) for seed in seeds}
    errors = {"storage_error": 0, "acknowledged": 0}
    # (it asks /healthz after every refused step: past the HTTP rate a client may keep up)
    with TestClient(create_app(data_dir=str(tmp_path), http_rate_limit=None)) as client, \
            ExitStack() as stack:
        pool, store = client.app.state.pool, client.app.state.pool.archive.store
        sockets = {seed: open_seats(client, stack) for seed in seeds}
        phase, pending, ids = {}, {}, {}
        for seed in seeds:
            data = send(sockets[seed]["fraudster"], "reset", {
                "seed": seed, "task_id": task_id, "obs_format": "tensor"})["data"]
            ids[seed], phase[seed] = data["match_id"], data["phase"]
            for role in ("investigator", "auditor"):
                send(sockets[seed][role], "join", {"match_id": ids[seed],
                                                   "obs_format": "tensor"})

        def attempt(seed):
            """One step of a match: the pending move again after a refusal, never a new one."""
            role = PHASE_ROLE[phase[seed]]
            if seed not in pending:
                obs = send(sockets[seed][role], "obs")["data"]
                pending[seed] = int(policies[seed][role].act(decode_observation(role, obs)))
            before = pool.get(ids[seed]).referee.state.model_dump(mode="json")
            reply = send(sockets[seed][role], "step", {"action_index": pending[seed]})
            if reply["type"] == "error":
                assert reply["data"]["code"] == "storage_error", reply
                assert pool.get(ids[seed]).referee.state.model_dump(mode="json") == before
                errors["storage_error"] += 1
                health = client.get("/healthz").json()  # says so, and counts what is stored
                assert health["status"] == "degraded" and health["storage_error"], health
                assert health["archived"] == len(read_records(tmp_path))
            else:
                del pending[seed]
                phase[seed] = reply["data"]["phase"]
                errors["acknowledged"] += 1

        for _ in range(15):
            for seed in seeds:
                attempt(seed)
        with caplog.at_level(logging.ERROR, "fraudarena_env.server"):
            fill_the_disk(store)
            for _ in range(60):
                for seed in seeds:
                    if phase[seed] != "done":
                        attempt(seed)
            with client.websocket_connect("/ws/fraudster") as extra:
                reply = send(extra, "reset", {"seed": 1})
                assert reply["type"] == "observation" or \
                    reply["data"]["code"] == "storage_error"
        assert errors["storage_error"] > 0, errors  # the fault was met
        assert any(r.levelno == logging.ERROR for r in caplog.records)
        free_the_disk(store)
        while any(phase[seed] != "done" for seed in seeds):
            for seed in seeds:
                if phase[seed] != "done":
                    attempt(seed)
        for seat in (s for seed in seeds for s in sockets[seed].values()):
            send(seat, "state")  # a socket stores the record of the match it ended after replying
        pool.sweep()  # archives what the store refused to archive before
        assert client.get("/healthz").json()["status"] == "ok"
        stack.close()
    records = {r["match_id"]: r for r in read_records(tmp_path)}
    for seed in seeds:
        expected = Arena().play(task_id, seed, baselines(seed),
                                faces=dict.fromkeys(ROLES, "tensor"))
        assert without_ids(records[ids[seed]]["state"]) == without_ids(
            expected.referee.state.model_dump(mode="json"))


def test_a_match_whose_record_the_store_refuses_is_kept_and_archived_later(tmp_path, caplog,
                                                                           monkeypatch):
    from fraudarena_env import archive as archive_module

    with TestClient(create_app(data_dir=str(tmp_path))) as client, ExitStack() as stack:
        pool = client.app.state.pool
        sockets = open_seats(client, stack)
        match_id = send(sockets["fraudster"], "reset", {"seed": 8, "task_id": "task_1",
                                                        "max_rounds": 1})["data"]["match_id"]
        for role in ("investigator", "auditor"):
            send(sockets[role], "join", {"match_id": match_id})
        send(sockets["fraudster"], "step", {"action_type": "commit_final"})
        while send(sockets["investigator"], "obs")["data"]["phase"] == "investigator_turn":
            send(sockets["investigator"], "step", {"action_type": "end_turn"})
        real_insert = archive_module.Archive.insert

        def full(self, record):
            raise StorageError("the store refused a write: database or disk is full")

        monkeypatch.setattr(archive_module.Archive, "insert", full)
        with caplog.at_level(logging.ERROR, "fraudarena_env.server"):
            reply = send(sockets["auditor"], "step", {"action_type": "submit_audit_report"})
            stack.close()  # every player leaves: the match leaves the pool, unarchived
        assert reply["type"] == "observation" and reply["data"]["done"]  # journaled: it stands
        assert any(match_id in r.getMessage() for r in caplog.records)
        health = client.get("/healthz").json()
        assert (health["status"], health["unarchived"], health["journaled"],
                health["archived"]) == ("degraded", 1, 1, 0)
        monkeypatch.setattr(archive_module.Archive, "insert", real_insert)
        pool.sweep()
        health = client.get("/healthz").json()
        assert (health["status"], health["unarchived"], health["journaled"],
                health["archived"]) == ("ok", 0, 0, 1)
    (record,) = read_records(tmp_path)
    assert record["match_id"] == match_id and record["state"]["phase"] == "done"


# ============================================================================ kill -9
class RemoteMatch:
    """One match played by a driver over real sockets, that survives its server's death."""

    def __init__(self, url, index):
        self.url = url
        self.task_id = TASK_IDS[index % len(TASK_IDS)]
        self.seed = 500 + index
        self.alone = index % 5 == 4  # one match in five: a remote investigator alone
        self.face = "tensor_sparse" if index % 2 else "json"
        self.policies = baselines(self.seed)
        self.remote = ["investigator"] if self.alone else list(ROLES)
        self.clients, self.tokens = {}, {}
        self.match_id = None
        self.steps = 0  # the match's step count as far as this driver knows it
        self.pending = None  # (step count when decided, role, action) until acknowledged
        self.phase = None

    def connect(self):
        from fraudarena_env.client import FraudArenaClient

        self.clients = {r: FraudArenaClient(self.url, r, obs_format=self.face, timeout=10)
                        for r in self.remote}

    def start(self):
        self.connect()
        first = self.remote[0]
        opponents = BASELINE_OPPONENTS if self.alone else None
        self.clients[first].reset(seed=self.seed, task_id=self.task_id, opponents=opponents)
        self.match_id = self.clients[first].match_id
        for role in self.remote[1:]:
            self.clients[role].join(self.match_id)
        self.tokens = {r: c.seat_token for r, c in self.clients.items()}
        self.phase = self.clients[first].last_data["phase"]

    def act(self, role, obs):
        policy = self.policies[role]
        return policy.act_model(obs) if self.face == "json" else int(policy.act(obs))

    def step(self):
        role = PHASE_ROLE[self.phase]
        client = self.clients[role]
        if self.pending is None:
            if self.alone:  # the server's seats move too: ask it where the match is
                self.steps = client.state().step_count
            self.pending = (self.steps, role, self.act(role, client.observe()))
        client.step(self.pending[2])
        self.pending = None
        self.steps += 1
        self.phase = client.last_data["phase"]

    def resume(self):
        """After the restart: take the seats back, and send the pending move again only if the
        server did not apply it before it died."""
        self.connect()
        for role, client in self.clients.items():
            client.join(self.match_id, seat_token=self.tokens[role])
        client = next(iter(self.clients.values()))
        now = client.state().step_count
        self.phase = client.last_data["phase"]
        if self.pending is not None and now != self.pending[0]:
            self.pending = None  # applied (journaled) before the kill; its reply was lost
        self.steps = now

    def close(self):
        for client in self.clients.values():
            try:
                client.close()
            except Exception:
                pass


def test_kill_9_during_50_live_matches_then_every_match_finishes_as_without_the_crash(
        tmp_path, monkeypatch):
    import httpx

    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    port = free_port()

    def start():
        # 150 sockets from one address, opened at once: its limits lifted to fit
        return spawn_or_skip(port, "--data-dir", str(tmp_path), "--max-matches", "64",
                             "--max-matches-per-address", "64",
                             "--max-connections-per-address", "200", "--http-rate-limit", "0")

    url = f"ws://127.0.0.1:{port}"
    proc = start()
    matches = [RemoteMatch(url, i) for i in range(50)]
    acknowledged = [0]
    killed = threading.Event()

    def killer(after):  # the kill lands wherever the driver is, mid-request or not
        while acknowledged[0] < after and proc.poll() is None:
            time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
        killed.set()

    try:
        for m in matches:
            m.start()
        thread = threading.Thread(target=killer, args=(1500,), daemon=True)
        thread.start()
        while not killed.is_set():
            live = [m for m in matches if m.phase != "done"]
            assert live, "every match ended before the kill"
            for m in live:
                try:
                    m.step()
                except Exception:
                    if not killed.wait(5):
                        raise
                    break
                acknowledged[0] += 1
        proc.wait(10)
        unfinished = sum(m.phase != "done" for m in matches)
        assert unfinished >= 40, unfinished  # the crash came during the matches
        for m in matches:
            m.close()
        proc = start()
        for m in matches:
            if m.phase != "done":
                m.resume()
        while any(m.phase != "done" for m in matches):
            for m in matches:
                if m.phase != "done":
                    m.step()
        for m in matches:  # a finished match leaves the pool once its players leave
            m.close()
        time.sleep(0.5)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        records = {r["match_id"]: r for r in read_records(tmp_path)}
    finally:
        for m in matches:
            m.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    assert health["archived"] == 50 and health["journaled"] == 0
    for m in matches:
        faces = {role: ("text" if m.face == "json" and role in m.remote else "tensor")
                 for role in ROLES}
        expected = Arena().play(m.task_id, m.seed, baselines(m.seed), faces=faces)
        record = records[m.match_id]
        assert record["reason"] == "finished", record
        assert without_ids(record["state"]) == without_ids(
            expected.referee.state.model_dump(mode="json")), m.match_id


# ============================================================================ where it lives
def test_the_store_is_on_disk_by_default_in_a_documented_directory(tmp_path, monkeypatch):
    from fraudarena_env.archive import default_data_dir
    from fraudarena_env.server import build_parser, config_from_args

    monkeypatch.delenv("FRAUDARENA_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "fraudarena"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "fraudarena"
    monkeypatch.setenv("FRAUDARENA_DATA_DIR", str(tmp_path / "explicit"))
    assert default_data_dir() == tmp_path / "explicit"

    def config(*argv):
        return config_from_args(build_parser().parse_args(list(argv)))

    assert config().data_dir == str(tmp_path / "explicit")
    assert config("--data-dir", str(tmp_path / "d")).data_dir == str(tmp_path / "d")
    assert config("--in-memory").data_dir is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--in-memory", "--data-dir", "x"])


def test_serve_refuses_a_data_directory_another_server_holds(tmp_path, capsys):
    from fraudarena_env.server import main

    held = Store(tmp_path)
    try:
        assert main(["--data-dir", str(tmp_path), "--port", "1"]) == 2
    finally:
        held.close()
    assert "another fraudarena server" in capsys.readouterr().err


def test_a_store_that_cannot_be_opened_is_a_storage_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match="cannot open the store"):
        Store(tmp_path / "file" / "store")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / DB_FILE).write_text("not a database, but long enough to be read " * 40)
    for _ in range(2):  # the second time too: a refused open lets its lock go
        with pytest.raises(StorageError, match="cannot open the store"):
            Store(tmp_path / "db")


@pytest.mark.parametrize("name", ["hash#1", "query?x", "pct%41"])
def test_a_data_directory_is_read_whatever_its_name_and_nothing_is_written(tmp_path,
                                                                          monkeypatch, name):
    """The database was opened as an unquoted URI: after "#" the rest of its path and
    ``mode=ro`` were dropped, so another file was read (``no such table``) and made."""
    data = tmp_path / name
    data.mkdir()
    (data / "matches.jsonl").write_text(json.dumps(record_of(0)) + "\n")
    with TestClient(create_app(data_dir=str(data))):  # imports the old archive into the store
        pass
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert [r["match_id"] for r in read_archive(data)] == ["m_000"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_line_nested_past_pythons_stack_or_made_of_fragments_is_skipped_in_few_reads(
        tmp_path, monkeypatch):
    """A deeply nested line stopped ``read_jsonl`` (and so ``fraudarena replay``) with a
    RecursionError; a line of many ``{"match_id"`` fragments was parsed once per fragment, each
    time from there to its end: time quadratic in its length."""
    import fraudarena_env.archive as archive

    path = tmp_path / "archive.jsonl"
    fragments = '{"match_id"' * 20_000
    path.write_text(json.dumps(record_of(0)) + "\n" + "[" * 100000 + "\n" + fragments + "\n"
                    + json.dumps(record_of(1)) + "\n")
    reads = []
    monkeypatch.setattr(archive.json, "loads", lambda text: reads.append(len(text)) or
                        json.JSONDecoder().decode(text.decode() if isinstance(text, bytes)
                                                  else text))
    assert [r["match_id"] for r in read_jsonl(path)] == ["m_000", "m_001"]
    assert len(reads) <= 3 + archive._FRAGMENTS_TRIED + 1


def test_one_match_is_read_from_a_store_by_its_key_not_by_loading_them_all(tmp_path,
                                                                          monkeypatch):
    """``fraudarena replay DIR --match ID`` parsed every record in the store (about 140 KB of
    memory a match) to keep one."""
    import fraudarena_env.archive as archive

    data = tmp_path / "data"
    data.mkdir()
    (data / "matches.jsonl").write_text("".join(json.dumps(record_of(i)) + "\n"
                                                for i in range(5)))
    with TestClient(create_app(data_dir=str(data))):
        pass
    parsed = []
    real = archive._row_or_damage
    monkeypatch.setattr(archive, "_row_or_damage",
                        lambda text, mid: parsed.append(mid) or real(text, mid))
    assert [r["match_id"] for r in read_archive(data, "m_003")] == ["m_003"]
    assert parsed == ["m_003"]
    assert read_archive(data, "m_404") == []


def test_a_record_of_a_proposal_with_copy_and_a_tactic_replays_as_it_was_played():
    """Before propose_ad took free copy or a tactic, not both, the copy set the tactic and the
    tactic given beside it was ignored: records and journals of that time replay so, where a
    live step with both is refused."""
    from fraudarena_env.archive import play_action
    from fraudarena_env.referee import Referee
    from fraudarena_env.rules.errors import IllegalActionError

    both = {"action_type": "propose_ad", "category": "fake_giveaway",
            "ad_copy": "Win a free prize today, claim it now", "tactic": "subtle"}
    played, live = Referee(), Referee()
    for ref in (played, live):
        ref.reset_match(seed=3, task_id="task_1")
    assert play_action(played, "fraudster", both) is False  # not charged
    assert played.proposals_used == 1
    copy_only = {k: v for k, v in both.items() if k != "tactic"}
    live.step_as_fraudster(copy_only)
    assert played.state == live.state
    with pytest.raises(IllegalActionError, match="not both"):  # a live step is refused
        live.step_as_fraudster(both)
