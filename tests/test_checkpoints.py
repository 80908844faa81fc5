"""The shipped checkpoints (training/checkpoints/, see training/RESULTS.md) load with the package
as it is, play every task legally, and still do what RESULTS.md says of them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sb3_contrib")

from fraudarena_env.arena import Arena, evaluate  # noqa: E402
from fraudarena_env.policies import BLIND_INVESTIGATORS, AlwaysReject  # noqa: E402
from fraudarena_env.rules.catalog import TACTICS, TASK_IDS  # noqa: E402
from fraudarena_env.sb3 import SB3Policy  # noqa: E402

CHECKPOINTS = Path(__file__).resolve().parents[1] / "training" / "checkpoints"
SEEDS = range(7000, 7004)  # RESULTS.md's evaluation seeds: never met in training


@pytest.fixture(scope="module")
def investigator():
    return SB3Policy.load(CHECKPOINTS / "investigator.zip", "investigator")


@pytest.fixture(scope="module")
def fraudster():
    return SB3Policy.load(CHECKPOINTS / "fraudster.zip", "fraudster")


@pytest.mark.parametrize("task", TASK_IDS)
def test_both_checkpoints_play_every_task_legally(task, investigator, fraudster):
    # the arena raises on an illegal action
    out = evaluate(task, SEEDS, lambda seed: {"investigator": investigator,
                                              "fraudster": fraudster})
    assert 0.0 <= out["grader"] <= 1.0


def test_the_investigator_beats_every_blind_policy_on_task_3_without_rejecting_legit_ads(
        investigator):
    ours = evaluate("task_3", SEEDS, lambda seed: {"investigator": investigator})
    assert ours["legit_rejected"] < 0.20
    for name, make in {"always_reject": AlwaysReject, **BLIND_INVESTIGATORS}.items():
        blind = evaluate("task_3", SEEDS, lambda seed, m=make: {"investigator": m(seed=seed)})
        assert ours["grader"] > blind["grader"] + 0.1, name


@pytest.mark.parametrize("task", ["task_3", "task_3_unseen"])
def test_the_investigator_links_ring_pairs_on_task_3_and_the_held_out_task(task, investigator):
    # it reads a task by its traits: the held-out task, with rings, is linked like task_3
    ours = evaluate(task, SEEDS, lambda seed: {"investigator": investigator})
    assert ours["links_correct"] >= 1.0 and ours["links_wrong"] < ours["links_correct"]


def test_results_script_reports_both_checkpoints_against_the_references(capsys):
    """training/results.py, which makes RESULTS.md's tables, on one seed of one task."""
    from fraudarena_env.cli import load_script

    results = load_script(CHECKPOINTS.parent / "results.py", "fraudarena_results")
    results.main(["--seeds", "7000-7001", "--task", "task_1",
                  "--investigator", str(CHECKPOINTS / "investigator.zip"),
                  "--fraudster", str(CHECKPOINTS / "fraudster.zip"), "--paired-seeds", "8000-8001"])
    out = capsys.readouterr().out
    for row in ("| task_1 | scripted |", "| task_1 | **checkpoint** |", "| task_1 | oracle | 1.000",
                "| task_1 | reactive |", "| task_1 | waiting |", "| task_1 | never_propose |",
                "best blind (", "checkpoint - reactive, paired", "checkpoint - scripted, paired", "Fraudster checkpoint minus ReactiveFraudster, paired by seed, on 2 seeds",
                "Investigator checkpoint minus ScriptedInvestigator, paired by seed",
                "Investigators against waiting fraudsters on 2 seeds",
                "| investigator | reactive | waiting | checkpoint fraudster |",
                "| task_1 | **checkpoint** | 0."):
        assert row in out, row


@pytest.mark.parametrize("argv, says", [
    (["--seeds", "x"], "bad seeds 'x'"),
    (["--investigator", str(CHECKPOINTS / "fraudster.zip")], "not a checkpoint of the investigator"),
    (["--fraudster", "missing.zip"], "no fraudster checkpoint at missing.zip"),
])
def test_results_script_names_a_bad_argument_before_any_match(capsys, argv, says):
    from fraudarena_env.cli import load_script

    results = load_script(CHECKPOINTS.parent / "results.py", "fraudarena_results")
    with pytest.raises(SystemExit) as exc:
        results.main(argv)
    assert exc.value.code == 2 and says in capsys.readouterr().err


def test_the_fraudster_hides_its_ads_and_proposes_early(fraudster):
    """What it learned (RESULTS.md): its teacher's hidden tactics (subtle and camouflaged copy),
    proposed as soon as it can, as ReactiveFraudster proposes; the last round takes none."""
    arena = Arena()
    for task in ("task_2", "task_3"):
        for seed in SEEDS:
            ref = arena.play(task, seed, {"fraudster": fraudster}).referee
            slots = ref.proposal_slots
            tactics = {TACTICS[ref.tactic_of(s)] for s in slots}
            assert len(slots) and tactics <= {"subtle", "camouflaged"}, (task, seed, tactics)
            rounds = [int(ref.arrived[s]) for s in slots]
            assert min(rounds) == 1 and max(rounds) < ref.max_rounds, (task, seed, rounds)
    # its margin over ReactiveFraudster (+0.08 on task_3, RESULTS.md) needs 200 paired seeds to
    # show: on these four it is noise, so only what it does is pinned here


# RESULTS.md's train.py flags, by the config.json field each one sets
RECORDED_FLAGS = {"--role": "role", "--task": "tasks", "--timesteps": "timesteps",
                  "--imitation-samples": "imitation_samples",
                  "--imitation-epochs": "imitation_epochs", "--teacher": "teacher",
                  "--lr": "learning_rate", "--vector-envs": "vector_envs", "--n-steps": "n_steps",
                  "--batch-size": "batch_size", "--n-epochs": "n_epochs",
                  "--calibration-coef": "calibration_coef", "--eval-every": "eval_every",
                  "--val-seeds": "val_seeds"}


def test_results_md_names_the_settings_the_kept_configs_record():
    """Each `train.py ... --out runs/NAME` command of RESULTS.md whose run is kept in
    checkpoints/logs/NAME names the settings that run's config.json records (a config from
    before the batched path has no vector_envs: it ran on RoleEnvs, `--vector-envs 0`), and one
    that names no --vector-envs ran on the batched path."""
    import json
    import re
    import shlex

    text = (CHECKPOINTS.parent / "RESULTS.md").read_text()
    checked = set()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if "training/train.py" not in line.split("#")[0]:
                continue
            args = shlex.split(line.split("#")[0])[2:]
            run = Path(args[args.index("--out") + 1]).name
            log = CHECKPOINTS / "logs" / run / "config.json"
            if not log.exists():
                continue
            config = json.loads(log.read_text())
            for flag, value in zip(args, args[1:]):
                if flag not in RECORDED_FLAGS:
                    continue
                recorded = config.get(RECORDED_FLAGS[flag])
                if flag == "--task":
                    value = value.split(",")
                elif flag == "--val-seeds":
                    low, high = map(int, value.split("-"))
                    value = list(range(low, high + 1))
                elif flag == "--vector-envs":
                    value, recorded = int(value), recorded or 0
                elif isinstance(recorded, (int, float)):
                    value = type(recorded)(float(value))
                assert value == recorded, (run, flag, value, recorded)
            if "--vector-envs" not in args:  # train.py's default now: the batched path
                assert (config.get("vector_envs") or 0) > 0, run
            checked.add(run)
    assert {"inv_c", "inv_r", "fr_h0"} <= checked, checked
