"""The replay page: one self-contained HTML page of an archived match (``fraudarena replay FILE
--html OUT.html``, and ``GET /api/v1/matches/{id}/replay.html`` on the server), checked as data
and in a real headless browser (Debian's ``chromium``).

Without chromium the browser tests skip on a developer's machine and fail in CI (``CI=true``):
``.ci/run`` installs it from Debian's packages first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fraudarena_env.archive import match_record, replay
from fraudarena_env.arena import Arena, outcome_counts
from fraudarena_env.cli import main
from fraudarena_env.replay_page import ROLE_COLOURS, TRUTH_COLOURS, match_timeline, replay_html

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def archived_match(task_id: str = "task_3", seed: int = 7) -> dict:
    actions: list = []
    result = Arena().play(task_id, seed, actions=actions)
    return match_record(result.referee, {"seed": seed, "task_id": task_id}, actions)


@pytest.fixture(scope="module")
def record() -> dict:
    return archived_match()


@pytest.fixture(scope="module")
def page(record) -> str:
    return replay_html(record)


# ----------------------------------------------------------------------------- the page as data
def test_the_page_fetches_nothing(page):
    assert "<script" not in page
    assert not re.search(r"""\b(?:src|href)\s*=\s*["'](?!data:|#)""", page)
    assert not re.search(r"\burl\(", page)
    assert "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page  # the browser refuses any fetch the page might attempt


def test_every_ad_is_on_the_page_with_its_truth_once_play_is_over(record, page):
    ref = replay(record)
    for ad in ref.episode_record()["ads"]:
        row = re.search(rf"<tr><td><span[^>]*>{ad['ad_id']}.*?</tr>", page)
        assert row, ad["ad_id"]
        assert f'<span class="truth {ad["ground_truth"]}">' in row.group(0)


def test_an_unfinished_match_hides_truth_and_rings(record):
    early = dict(record, actions=record["actions"][:20], reason="evicted")
    page = replay_html(early)
    assert 'class="truth' not in page and 'class="ring-edge' not in page
    assert "the ads' truth and the rings are hidden" in page


def test_the_queue_round_by_round_follows_the_verdicts(record):
    tl = match_timeline(record)
    log = tl.referee.state.investigator_action_log
    verdicts = [e for e in log if e["action_type"] == "verdict"]
    assert verdicts
    for e in verdicts:
        ad, given = e["ad_id"], e["round_number"]
        for r, statuses in tl.end_of_round.items():
            if r >= given:
                assert statuses[ad] == e["verdict"], (ad, r)
            elif r >= tl.arrival[ad]:
                assert statuses[ad] == "pending", (ad, r)
            else:
                assert ad not in statuses, (ad, r)


def test_rewards_over_time_end_at_the_match_totals(record):
    tl = match_timeline(record)
    assert len(tl.steps) == len(record["actions"])
    assert tl.steps[-1]["totals"] == pytest.approx(list(tl.referee.totals))
    assert [s["role"] for s in tl.steps] == [a["role"] for a in record["actions"]]


def test_links_are_drawn_right_or_wrong_against_the_true_rings(record, page):
    counts = outcome_counts(replay(record))
    assert counts["links_correct"] + counts["links_wrong"] > 0  # this match has links
    assert page.count('class="link right"') == counts["links_correct"]
    assert page.count('class="link wrong"') == counts["links_wrong"]
    for ring in replay(record).episode_record()["fraud_rings"]:
        assert ring["ring_id"] in page


def test_evidence_rows_show_what_each_pull_revealed(record, page):
    pulls = [e for e in replay(record).state.investigator_action_log
             if e["action_type"] == "investigate"]
    assert pulls
    evidence = page[page.index('<table id="evidence">'):]
    evidence = evidence[:evidence.index("</table>")]
    assert evidence.count("<tr>") == len(pulls) + 1  # + the header row
    for e in pulls:
        assert e["findings_excerpt"].replace("'", "&#x27;") in evidence


# ----------------------------------------------------------------------------- CLI and server
def test_cli_plays_archives_and_writes_the_page(tmp_path, capsys):
    archive = tmp_path / "matches.jsonl"
    assert main(["play", "--task", "task_2", "--seed", "5", "--plain", "--archive",
                 str(archive)]) == 0
    (line,) = archive.read_text().splitlines()
    match_id = json.loads(line)["match_id"]
    out = tmp_path / "match.html"
    assert main(["replay", str(archive), "--match", match_id, "--html", str(out)]) == 0
    assert f"wrote the replay page of match {match_id}" in capsys.readouterr().out
    assert out.read_text() == replay_html(json.loads(line))


def test_cli_writes_the_page_from_a_servers_data_directory_and_its_export(tmp_path, record):
    from fraudarena_env.archive import Archive

    store = Archive(tmp_path / "data")  # the server's SQLite store
    store.insert(record)
    store.close()
    from_store, from_export = tmp_path / "store.html", tmp_path / "export.html"
    assert main(["replay", str(tmp_path / "data"), "--html", str(from_store)]) == 0
    assert main(["export", str(tmp_path / "data"), str(tmp_path / "out.jsonl")]) == 0
    assert main(["replay", str(tmp_path / "out.jsonl"), "--match", record["match_id"], "--html",
                 str(from_export)]) == 0
    assert from_store.read_text() == from_export.read_text() == replay_html(record)


def test_the_server_serves_the_same_page_for_an_archived_match(tmp_path, record):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fraudarena_env.server import create_app

    # an older server's matches.jsonl, which the store imports; read with the server's API key
    (tmp_path / "matches.jsonl").write_text(json.dumps(record) + "\n")
    with TestClient(create_app(data_dir=str(tmp_path), api_key="k" * 24),
                    headers={"X-API-Key": "k" * 24}) as client:
        reply = client.get(f"/api/v1/matches/{record['match_id']}/replay.html")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/html")
        assert reply.text == replay_html(record)
        missing = client.get("/api/v1/matches/m_nope/replay.html")
        assert missing.status_code == 404 and missing.json()["code"] == "unknown_match"


# ----------------------------------------------------------------------------- in a browser
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def run_chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    """What the page logged to the console (chromium prints each as ``...:CONSOLE...] "text",
    source: ...``): blocked fetches, script errors, anything at all."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_the_console_check_catches_errors_and_blocked_fetches(tmp_path):
    """The harness itself: a page that errs and tries a fetch its policy forbids is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><head><meta http-equiv="Content-Security-Policy" '
                   'content="default-src \'none\'; script-src \'unsafe-inline\'"></head><body>'
                   '<img src="http://127.0.0.1:9/x.png"><script>undefinedFunction()</script>'
                   "</body></html>")
    out = run_chromium(bad, tmp_path, "--dump-dom")
    messages = " ".join(console_messages(out.stderr))
    assert "undefinedFunction is not defined" in messages
    assert "Content Security Policy" in messages


def test_the_page_renders_in_chromium_without_console_messages(tmp_path, page, record):
    path = tmp_path / "match.html"
    path.write_text(page)
    out = run_chromium(path, tmp_path, "--dump-dom")
    assert out.returncode == 0, out.stderr[-2000:]
    assert console_messages(out.stderr) == []
    dom = out.stdout
    ref = replay(record)
    for ad in ref.episode_record()["ads"]:
        assert f'data-ad="{ad["ad_id"]}"' in dom  # a node in the rendered graph
    assert dom.count('class="reward-line"') == 3
    assert record["match_id"] in dom


def test_the_screenshot_shows_the_match(tmp_path, page):
    image_module = pytest.importorskip("PIL.Image")
    path, shot = tmp_path / "match.html", tmp_path / "match.png"
    path.write_text(page)
    out = run_chromium(path, tmp_path, f"--screenshot={shot}", "--window-size=1280,5200",
                       "--hide-scrollbars")
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    image = image_module.open(shot).convert("RGB")
    assert image.size == (1280, 5200)
    colours = {colour: n for n, colour in image.getcolors(maxcolors=1 << 24)}

    def seen(hex_colour: str) -> int:
        return colours.get(tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)), 0)

    # the three reward lines, and ads of each truth in the graph, are drawn
    for role, colour in ROLE_COLOURS.items():
        assert seen(colour) > 100, role
    for label in ("fraud", "legit"):
        assert seen(TRUTH_COLOURS[label]) > 300, label
    white = colours.get((255, 255, 255), 0)
    assert white < 0.9 * image.size[0] * image.size[1]  # not a blank page
