"""The docs say what is true: every ```python and ```bash block of README.md and docs/ runs as
printed, the README's picture of a match is what the env renders, and the install story (Python
version, commands, extras) is one story in README, docs, pyproject.toml and .ci/run.

How a block runs:

- on its own, in a fresh directory (so it must be self-contained), with this interpreter's
  ``bin`` first on PATH; ``training/``, ``benchmarks/`` and ``notebooks/`` are linked into that
  directory, so a block may name them as a user at the top of a checkout would;
- a block that talks to ``127.0.0.1:8000`` runs against a ``fraudarena serve`` this test starts
  on a free port (the only change made to a block: its port), with an API key in
  ``FRAUDARENA_API_KEY`` for the server and the block, as the server page tells a user to set it;
- a block that imports ``ray`` is marked ``rllib`` and runs in the RLlib virtualenv
  (``pytest -m rllib tests/test_docs.py``);
- the paragraph just before a block may say ``Docs test: slow (reason).`` (marked ``slow``) or
  ``Docs test: not run (reason).`` (skipped, with the reason in pytest's report). Those are the
  only ways out, and they are visible to every reader of the page;
- a block that needs an optional extra which is not installed is skipped, as the library tests
  are (CI installs every extra).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^Docs test: (slow|not run) \((.+)\)\.$")
LINKED = ("training", "benchmarks", "notebooks")
SERVER = "127.0.0.1:8000"
API_KEY = secrets.token_urlsafe(24)  # the server's key, in the environment of both


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    source: str
    directive: str  # "", "slow" or "not run"
    reason: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def needs_ray(self) -> bool:
        return bool(re.search(r"^\s*(import ray|from ray[ .])", self.source, re.M))

    @property
    def needs_server(self) -> bool:
        return SERVER in self.source


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with its language and the directive in the paragraph
    just before it."""
    found, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = [line for line in lines[:i] if line.strip()]
        directive = DIRECTIVE.match(before[-1].strip()) if before else None
        found.append(Block(path, i + 1, opened.group(1), "\n".join(lines[i + 1:end]) + "\n",
                           directive.group(1) if directive else "",
                           directive.group(2) if directive else ""))
        i = end + 1
    return found


BLOCKS = [b for path in DOC_FILES for b in blocks_of(path) if b.language in ("python", "bash")]


def marks(block: Block) -> list:
    out = []
    if block.needs_ray:
        out.append(pytest.mark.rllib)
    if block.directive == "slow":
        out.append(pytest.mark.slow)
    if block.directive == "not run":
        out.append(pytest.mark.skip(reason=f"not run, as the page says: {block.reason}"))
    return out


@pytest.fixture(scope="module")
def server_port(tmp_path_factory):
    """A real ``fraudarena serve`` on a free local port, for the blocks that play remotely."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path_factory.mktemp("arena-data")
    log = data / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fraudarena_env", "serve", "--port",
                                 str(port), "--data-dir", str(data), "--log-level", "warning"],
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "FRAUDARENA_API_KEY": API_KEY})
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"fraudarena serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def run_block(block: Block, workdir: Path, port: int | None = None) -> None:
    for name in LINKED:
        (workdir / name).symlink_to(REPO / name)
    source = block.source if port is None else block.source.replace(SERVER, f"127.0.0.1:{port}")
    if block.language == "python":
        script, command = workdir / "block.py", [sys.executable, "block.py"]
    else:
        script, command = workdir / "block.sh", ["bash", "-euo", "pipefail", "block.sh"]
    script.write_text(source)
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if port is not None:
        env["FRAUDARENA_API_KEY"] = API_KEY
    timeout = 3600 if block.directive == "slow" else 600
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (
        f"{block.name} ({block.language}) exited {done.returncode}\n--- block\n{source}"
        f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}")


# Packages of the optional extras: a block that needs one that is missing is skipped, as the
# library tests are (CI installs every extra, so there it runs).
EXTRA_OF = {"torch": "train", "sb3_contrib": "train", "torchrl": "torchrl",
            "tianshou": "tianshou", "ray": "rllib"}


def missing_extra(block: Block) -> str | None:
    needed = set(re.findall(r"^\s*(?:from|import) (\w+)", block.source, re.M))
    if block.language == "bash" and re.search(r"training/|fraudarena train", block.source):
        needed.add("sb3_contrib")
    for module in sorted(needed & set(EXTRA_OF)):
        if importlib.util.find_spec(module) is None:
            return f"needs the {EXTRA_OF[module]} extra ({module} is not installed)"
    return None


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name, marks=marks(b)) for b in BLOCKS])
def test_every_code_block_runs_as_printed(block, tmp_path, request):
    if reason := missing_extra(block):
        pytest.skip(reason)
    port = request.getfixturevalue("server_port") if block.needs_server else None
    run_block(block, tmp_path, port)


def test_the_docs_have_code_blocks_and_a_block_left_out_says_why():
    assert len(BLOCKS) >= 15 and {b.path.name for b in BLOCKS} >= {"README.md", "env.md"}
    for block in BLOCKS:
        assert block.directive != "not run" or len(block.reason.split()) >= 4, block.name
    # the shell and Python blocks are the only code a reader is asked to run
    others = {b.language for path in DOC_FILES for b in blocks_of(path)} - {"python", "bash"}
    assert others <= {"text"}, others


# ----------------------------------------------------------------------------- the README
def readme_block_after(heading: str) -> Block:
    blocks = blocks_of(REPO / "README.md")
    text = (REPO / "README.md").read_text().splitlines()
    at = text.index(heading) + 1
    return next(b for b in blocks if b.line > at)


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


def test_the_readme_picture_is_what_the_env_renders():
    """README: task_1, seed 7, the scripted players, the board after 40 steps."""
    from fraudarena_env import fraudarena_v0
    from fraudarena_env.policies import BASELINES

    env = fraudarena_v0.env(task_id="task_1", render_mode="ansi")
    env.reset(seed=7)
    players = {role: BASELINES[role](seed=7) for role in env.possible_agents}
    for steps, agent in enumerate(env.agent_iter(), start=1):
        obs, _, terminated, truncated, _ = env.last()
        env.step(None if terminated or truncated
                 else players[agent].act(obs["observation"], obs["action_mask"]))
        if steps == 40:
            break
    picture = readme_block_after("## A match")
    assert picture.language == "text"
    assert picture.source.rstrip("\n") == env.render().rstrip("\n")


def test_ci_runs_the_readme_test_command():
    """.ci/run mirrors the README's test command: the same installs, then pytest."""
    command = readme_block_after("Run the tests:").source
    ci = (REPO / ".ci" / "run").read_text()
    installs = re.findall(r"pip install ([^&\n]+?)\s*(?:&&|$)", command, re.M)
    assert len(installs) == 2
    for args in installs:
        assert f"python -m pip install {args.strip()}" in ci, args
    assert "python -m pytest" in command and "\npython -m pytest\n" in ci
    assert "mkdocs build --strict" in ci


# ----------------------------------------------------------------------------- install
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_one_python_requirement_everywhere():
    """pyproject requires the version CI runs, and the README and install page say the same."""
    project = pyproject()["project"]
    assert project["requires-python"] == ">=3.11"
    versions = {c.rsplit(":: ", 1)[-1] for c in project["classifiers"]
                if c.startswith("Programming Language :: Python :: 3.")}
    assert versions == {"3.11"}
    assert 'PY=python3.11' in (REPO / ".ci" / "run").read_text()
    for page in ("README.md", "docs/install.md"):
        text = (REPO / page).read_text()
        assert "Python 3.11" in text and "python3.11 -m venv" in text, page
        assert not re.search(r"Python 3\.(?!11)\d+", text), page


def test_the_install_says_how_to_get_torch_without_cuda():
    cpu = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    assert cpu in (REPO / "README.md").read_text()
    assert cpu in (REPO / "docs" / "install.md").read_text()
    assert f"python -m {cpu}" in (REPO / ".ci" / "run").read_text()


def test_every_extra_brings_what_its_examples_import():
    extras = pyproject()["project"]["optional-dependencies"]
    names = {extra: {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in reqs}
             for extra, reqs in extras.items()}
    assert {"ray", "pillow"} <= names["rllib"]  # RLlib's examples import PIL
    assert "mkdocs" in names["docs"]
    assert {"torch", "sb3-contrib", "tqdm", "matplotlib"} <= names["train"]
    assert {"fastapi", "uvicorn", "websockets"} <= names["server"]
    everything = extras["all"][0]
    assert all(extra in everything for extra in ("train", "server", "dev", "torchrl", "tianshou",
                                                  "docs"))


def test_the_install_page_runs_the_rllib_tests_ci_runs():
    """docs/install.md's RLlib block installs and tests what .ci/run's RLlib stage does."""
    block = next(b for b in blocks_of(REPO / "docs" / "install.md") if ".venv-rllib" in b.source)
    ci = (REPO / ".ci" / "run").read_text()
    ci_tests = re.search(r'^RLLIB_TESTS="([^"]+)"', ci, re.M).group(1).split()
    command = next(line for line in block.source.splitlines() if "pytest -m rllib" in line)
    assert command.split("pytest -m rllib", 1)[1].split() == ci_tests
    assert 'pip install -e ".[dev,rllib]"' in block.source and '-m pip install -e ".[dev,rllib]"' in ci


def test_the_rules_page_task_table_is_the_catalogue():
    """docs/rules.md's table of tasks, and its budget per ad, are rules/catalog.py's TASKS."""
    from fraudarena_env.rules.catalog import TASKS

    text = (REPO / "docs" / "rules.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = re.match(r"`(task_\w+)`", cells[0]) if line.startswith("| `task") else None
        if found:
            rows[found.group(1)] = cells[1:]
    assert set(rows) == set(TASKS)
    for task_id, cells in rows.items():
        task = TASKS[task_id]
        numbers = [[float(x) for x in re.findall(r"\d+", cell)] for cell in cells]
        assert numbers[0] == [task.n_legit, task.n_fraud, task.n_escalate], task_id
        assert numbers[1] == [round(100 * w) for w in task.tactic_weights], task_id
        assert numbers[2:6] == [[task.n_rings], [task.action_budget], [task.max_rounds],
                                [task.max_proposals]], task_id
        assert numbers[6] == [task.max_fraudster_actions_per_turn,
                              task.max_investigator_actions_per_turn], task_id
    per_ad = {t: TASKS[t].action_budget / (TASKS[t].queue_size + TASKS[t].max_proposals)
              for t in ("task_1", "task_3_unseen")}
    assert f"about {per_ad['task_1']:g} actions per ad on\n`task_1`, {per_ad['task_3_unseen']:g} " \
           f"on `task_3_unseen`" in text, per_ad


def test_the_rules_page_quotes_the_catalogue_s_signal_strengths():
    """docs/rules.md, "Kinds of ad" and "Fraudster tactics": the surface and evidence shifts,
    the severity scale, the reuse trail and the rejection charge are the rules' constants."""
    from fraudarena_env.rules import catalog, scoring
    from fraudarena_env.rules.generator import SURFACE_SHIFT

    text = " ".join((REPO / "docs" / "rules.md").read_text().split())
    surface = dict(zip(catalog.TACTICS, catalog.TACTIC_SURFACE))
    assert (f"blatant {surface['blatant']:g}, standard {surface['standard']:g}, subtle "
            f"{surface['subtle']:g}, camouflaged {surface['camouflaged']:g} (times "
            f"{SURFACE_SHIFT:g} noise standard deviations per signal), gray-area "
            f"{catalog.ESCALATE_SURFACE:g}") in text
    profile = dict(zip(catalog.KINDS, catalog.EVIDENCE_PROFILE))
    source = catalog.TARGETS.index
    assert (profile["camouflaged"][source("advertiser_history")]
            == profile["camouflaged"][source("payment_method")])
    classifier = source("policy_classifier")
    assert (f"(camouflaged {profile['camouflaged'][source('payment_method')]:g}), the policy "
            f"classifier reads the copy (blatant {profile['blatant'][classifier]:.1f}, camouflaged "
            f"{profile['camouflaged'][classifier]:g}), gray-area ads trip the classifier "
            f"({profile['escalate'][classifier]:g})") in text
    severity = dict(zip(catalog.TACTICS, catalog.TACTIC_SEVERITY))
    assert f"severity x{severity['camouflaged']:g} of its category's" in text
    assert f"does the most harm (x{severity['blatant']:.1f})" in text
    assert f"read {catalog.SIGNATURE_REUSE_SHIFT:g} worse on every source" in text
    assert f"minus {-scoring.FRAUDSTER_BANNED:g} when rejected" in text


def test_the_rules_page_states_plausibility_as_the_audit_scores_it():
    """docs/rules.md, "Plausibility": each track-B penalty, the gibberish length, the repetition
    threshold and every category's market words are the code's; free copy's tactic is read from
    its risk phrases as the page says."""
    from fraudarena_env.models import FraudsterAction
    from fraudarena_env.referee import Referee
    from fraudarena_env.rules import audit, lexicon
    from fraudarena_env.rules.catalog import CATEGORIES, RISK_PHRASES, TACTICS

    text = " ".join((REPO / "docs" / "rules.md").read_text().split())
    for finding, penalty in audit.TRACK_B_PENALTY.items():
        assert re.search(rf"\| `{finding}` \|[^|]+\| {penalty:g} \|", text), finding
    assert f"shorter than {lexicon.GIBBERISH_MIN_LENGTH} characters" in text
    assert f"Jaccard at least {audit.REPETITION_JACCARD:g}" in text
    words = "; ".join(f"{c.name}: {', '.join(c.keywords)}" for c in CATEGORIES)
    assert f"The market words, by category: {words}." in text
    by_markers = ("camouflaged", "subtle", "standard", "blatant")  # none, one, two, three+
    assert "none is camouflaged, one subtle, two standard, three or more blatant" in text
    free = FraudsterAction(action_type="propose_ad", category="ecommerce", ad_copy="x" * 30)
    copy = "Shop our store today for fresh delivery"
    for n, tactic in enumerate(by_markers):  # n risk markers in free copy: its tactic
        if n:  # one more phrase that adds exactly one marker
            copy = next(f"{copy} {p}" for p in RISK_PHRASES
                        if lexicon.count_risk_markers(f"{copy} {p}") == n)
        referee = Referee()
        referee.reset_match(task_id="task_1", seed=0)
        referee.step_as_fraudster(free.model_copy(update={"ad_copy": copy}))
        assert TACTICS[referee.tactic_of(referee.proposal_slots[0])] == tactic, n


def test_the_models_page_names_every_field_of_every_model():
    """docs/models.md is the text face's field reference: a field added to a model and not to
    the page fails here."""
    from fraudarena_env import models

    text = (REPO / "docs" / "models.md").read_text()
    for cls in (models.FraudsterObservation, models.AdReviewObservation,
                models.AuditorObservation, models.FraudsterAction, models.AdReviewAction,
                models.AuditorAction):
        missing = [f for f in cls.model_fields if f"`{f}`" not in text]
        assert not missing, (cls.__name__, missing)
        for literal in ("action_type",):
            for kind in get_args(cls.model_fields[literal].annotation) if literal in \
                    cls.model_fields else ():
                assert f"`{kind}`" in text, (cls.__name__, kind)


def test_the_env_pages_sizes_are_the_env_s():
    """The sizes env.md, conventions.md, vector.md and libraries.md give: each role's action
    count on every task, the 32 slots, the shared action space and the global state's length."""
    from fraudarena_env import fraudarena_v0
    from fraudarena_env.rules.catalog import MAX_SLOTS, TASK_IDS
    from fraudarena_env.wrappers import shared_space_env

    page = {name: " ".join((REPO / "docs" / name).read_text().split())
            for name in ("env.md", "conventions.md", "vector.md", "libraries.md")}
    for task_id in TASK_IDS:
        env = fraudarena_v0.env(task_id=task_id)
        env.reset(seed=0)
        counts = {agent: int(env.action_space(agent).n) for agent in env.possible_agents}
        assert (f"fraudster {counts['fraudster']}, investigator {counts['investigator']}, "
                f"auditor {counts['auditor']} actions, on every task") in page["env.md"], task_id
        state = f"{env.state_space.shape[0]:,}"
        assert f"{MAX_SLOTS} ad slots everywhere" in page["env.md"]
        assert f"for each of the {MAX_SLOTS} slots" in page["conventions.md"]
        assert f"`Box` of {state} float32" in page["conventions.md"]
        assert f"(N, {state}) float32" in page["vector.md"]
    shared = shared_space_env(task_id="task_1").action_space("auditor").n
    assert shared == max(counts.values())
    assert f"the action space is `Discrete({shared})`" in page["env.md"]
    assert f"zero padding; {shared} actions" in page["libraries.md"]


def test_the_install_page_extras_table_names_what_each_extra_brings():
    """docs/install.md's table of extras: one row per extra of pyproject.toml, and its "brings"
    cell names every package the extra lists (or the extras `all` gathers)."""
    extras = pyproject()["project"]["optional-dependencies"]
    spoken = {"torch": "pytorch", "ray": "ray rllib", "sb3-contrib": "sb3-contrib"}
    rows = {}
    for line in (REPO / "docs" / "install.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+`", cells[0]):
            rows[cells[0].strip("`")] = cells[2].lower()
    assert set(rows) == set(extras)
    for extra, requirements in extras.items():
        if extra == "all":
            gathered = re.search(r"\[(.+)\]", requirements[0]).group(1).split(",")
            assert all(f"`{name}`" in rows["all"] for name in gathered)
            continue
        for requirement in requirements:
            name = re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0].lower()
            assert spoken.get(name, name) in rows[extra], (extra, name)


def test_the_server_page_states_the_server_s_default_limits():
    """docs/server.md's list of limits gives ServerConfig's defaults (what `fraudarena serve`
    runs with) and the server's caps on free text, charged actions and nesting."""
    from fraudarena_env.server import MAX_PENALTIES, MAX_TEXT_CHARS, ServerConfig
    from fraudarena_env.server_limits import MAX_NESTING

    c = ServerConfig()
    text = " ".join((REPO / "docs" / "server.md").read_text().split())
    for said in (
        f"At most {c.max_matches} live matches, {c.max_matches_per_address} created from one "
        f"client address and {c.max_matches_per_connection} by one socket",
        f"faster than {c.abandon_rate:g} a second ({c.abandon_burst} at once)",
        f"within {c.start_grace:g} s of its creation",
        f"held a seat of for {c.reconnect_grace:g} s",
        f"nobody has moved in for {c.idle_timeout:g} s",
        f"at most {MAX_TEXT_CHARS // 1024} Ki characters of free text",
        f"At most {c.max_connections:,} open, {c.max_connections_per_address} from one address",
        f"holds no seat for {c.lobby_timeout:g} s is closed",
        f"may send {c.rate_limit:g} messages a second, {c.rate_burst:,} at once",
        f"may make {c.http_rate_limit:g} HTTP requests a second, {c.http_rate_burst} at once",
        f"`message_too_large` past {c.max_message_bytes // 1024} KiB",
        f"nested deeper than {MAX_NESTING} levels",
        f"A match charges at most {MAX_PENALTIES} actions",
    ):
        assert said in text, said


def test_the_command_line_page_s_five_seed_example_reads_as_it_says():
    """docs/cli.md warns that its five-seed `evaluate` example flags task_1's repeat fraudster
    NOT below the reactive one, with the two mean returns it quotes."""
    from fraudarena_env.arena import evaluate
    from fraudarena_env.cli import FRAUDSTERS

    seeds = range(1000, 1005)
    repeat = evaluate("task_1", seeds, lambda s: {"fraudster": FRAUDSTERS["repeat"](seed=s)})
    reactive = evaluate("task_1", seeds, lambda s: {})
    assert repeat["fraudster"] >= reactive["fraudster"]  # not below: what the page warns of
    text = " ".join((REPO / "docs" / "cli.md").read_text().split())
    assert (f"mean return {repeat['fraudster']:+.2f} against the reactive one's "
            f"{reactive['fraudster']:+.2f}") in text
