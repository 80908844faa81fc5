"""`fraudarena evaluate`: policy SPECs (names, the oracle, checkpoints), the --json document, and
the per-match metrics it reports (fraudarena_env.arena.match_metrics)."""

from __future__ import annotations

import argparse
import json
import sys

import pytest

from fraudarena_env import cli
from fraudarena_env.arena import Arena, match_metrics, outcome_counts
from fraudarena_env.policies import AlwaysApprove, OracleInvestigator, ReactiveFraudster

METRICS = {"grader", "fraudster", "investigator", "auditor", "steps", "fraud_live",
           "fraud_live_count", "legit_rejected", "legit_rejected_count", "escalations",
           "links_correct", "links_wrong"}


def evaluate_json(capsys, *argv: str) -> dict:
    assert cli.main(["evaluate", *argv, "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)  # stdout holds the document and nothing else


def row_of(doc: dict, task: str, label: str) -> dict:
    return next(r for r in doc["tasks"][task] if r["row"] == label)


# ---------------------------------------------------------------------------- SPEC parsing
@pytest.mark.parametrize("role", ["fraudster", "investigator", "auditor"])
def test_every_name_play_accepts_is_a_spec(role):
    for name in cli.POLICIES[role]:
        spec = cli.parse_policy_spec(role, name)
        assert (spec.role, spec.text, spec.path) == (role, name, None)


def test_oracle_is_a_spec_of_the_investigator_only():
    assert cli.parse_policy_spec("investigator", "oracle").path is None
    with pytest.raises(argparse.ArgumentTypeError, match="unknown fraudster policy 'oracle'"):
        cli.parse_policy_spec("fraudster", "oracle")


def test_an_unknown_name_is_a_usage_error_listing_the_valid_names(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "--task", "task_1", "--seeds", "1", "--investigator", "oracel"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown investigator policy 'oracel'" in err
    assert "scripted, always_reject" in err and "oracle" in err and ".zip" in err


def test_a_missing_checkpoint_is_a_usage_error_naming_the_file(capsys, tmp_path):
    missing = tmp_path / "investigator.zip"
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "--task", "task_1", "--seeds", "1", "--investigator", str(missing)])
    assert exc.value.code == 2
    assert f"no investigator checkpoint at {missing}: no such file" in capsys.readouterr().err


def test_a_directory_of_checkpoints_is_a_usage_error_naming_one_to_give(capsys, tmp_path):
    """A pool directory (train.py's opponents take one) said 'no such file' here."""
    for name in ("investigator_g0.zip", "fraudster_g0.zip"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "--task", "task_1", "--seeds", "1", "--fraudster", str(tmp_path)])
    assert exc.value.code == 2
    assert (f"{tmp_path} is a directory; give one fraudster checkpoint .zip in it, such as "
            f"{tmp_path / 'fraudster_g0.zip'}") in capsys.readouterr().err


def test_a_checkpoint_path_may_leave_out_zip(tmp_path):
    (tmp_path / "fraudster.zip").write_bytes(b"")
    spec = cli.parse_policy_spec("fraudster", str(tmp_path / "fraudster"))
    assert spec.path == tmp_path / "fraudster.zip" and spec.text == str(tmp_path / "fraudster")


def test_a_checkpoint_without_the_train_extra_says_what_to_install(monkeypatch, tmp_path,
                                                                    capsys):
    path = tmp_path / "investigator.zip"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # import sb3_contrib now fails
    assert cli.main(["evaluate", "--task", "task_1", "--seeds", "1", "--investigator",
                     str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "train extra" in err and 'pip install -e ".[train]"' in err


# ---------------------------------------------------------------------------- --json
def test_json_has_every_metric_per_task_and_row(capsys):
    doc = evaluate_json(capsys, "--task", "task_1", "task_2", "--seeds", "1-2",
                        "--investigator", "always_approve", "--fraudster", "random")
    assert doc["n_seeds"] == 2 and doc["seeds"] == [1, 2]
    assert list(doc["tasks"]) == ["task_1", "task_2"]
    for rows in doc["tasks"].values():
        assert [r["row"] for r in rows] == ["scripted trio", "fraudster=random",
                                            "investigator=always_approve"]
        for r in rows:
            assert r["n_seeds"] == 2
            assert set(r["mean"]) == set(r["std"]) == METRICS
            assert 0.0 <= r["mean"]["grader"] <= 1.0
            assert 0.0 <= r["mean"]["fraud_live"] <= 1.0
            assert 0.0 <= r["mean"]["legit_rejected"] <= 1.0
            assert all(v >= 0.0 for v in r["std"].values())
    trio = row_of(doc, "task_1", "scripted trio")
    assert trio["varied_role"] is None and trio["policies"] == cli.BASELINE_NAMES
    approving = row_of(doc, "task_1", "investigator=always_approve")
    assert approving["varied_role"] == "investigator"
    assert approving["policies"]["investigator"] == "always_approve"
    assert approving["mean"]["fraud_live"] == 1.0 and approving["mean"]["legit_rejected"] == 0.0


def test_the_oracle_rejects_no_legit_ad_and_grades_one(capsys):
    doc = evaluate_json(capsys, "--task", "task_1", "task_3", "--seeds", "1000-1001",
                        "--investigator", "oracle")
    for task in ("task_1", "task_3"):
        oracle = row_of(doc, task, "investigator=oracle")
        assert oracle["mean"]["grader"] == pytest.approx(1.0)
        assert oracle["mean"]["legit_rejected_count"] == 0.0
        assert oracle["mean"]["fraud_live_count"] == 0.0
        assert oracle["mean"]["links_wrong"] == 0.0
    assert row_of(doc, "task_3", "investigator=oracle")["mean"]["links_correct"] > 0


def test_always_reject_rejects_every_legit_ad(capsys):
    doc = evaluate_json(capsys, "--task", "task_2", "--seeds", "3-4", "--investigator",
                        "always_reject")
    rejecting = row_of(doc, "task_2", "investigator=always_reject")
    assert rejecting["mean"]["legit_rejected"] == 1.0 and rejecting["std"]["legit_rejected"] == 0
    assert rejecting["mean"]["legit_rejected_count"] > 0


def test_json_and_the_skill_suite_do_not_mix(capsys):
    assert cli.main(["evaluate", "--suite", "skill", "--json", "--no-progress"]) == 2
    assert "--json" in capsys.readouterr().err


# ---------------------------------------------------------------------------- match_metrics
def test_match_metrics_count_what_the_scoreboard_counts():
    result = Arena().play("task_3", 7, {"investigator": AlwaysApprove(seed=7)})
    m = match_metrics(result)
    c = outcome_counts(result.referee)
    assert m["fraud_live_count"] == c["fraud"] > 0 and m["fraud_live"] == 1.0
    assert m["legit_rejected_count"] == 0 and m["escalations"] == 0
    assert m["grader"] == result.grader and m["investigator"] == result.returns["investigator"]


def test_the_arena_binds_a_policy_that_reads_the_referee():
    arena = Arena()
    oracle = OracleInvestigator()
    result = arena.play("task_2", 5, {"investigator": oracle})
    assert oracle.referee is arena.referee and result.grader == pytest.approx(1.0)


@pytest.mark.parametrize("policies, error, needle", [
    ({"investigater": AlwaysApprove(seed=0)}, ValueError, "unknown role 'investigater'"),
    ({"investigator": "scripted"}, TypeError, "the investigator policy must be"),
    ({"investigator": ReactiveFraudster(seed=0)}, ValueError,
     "ReactiveFraudster plays fraudster, not investigator: the policy given for investigator"),
])
def test_the_arena_names_a_wrong_policies_dict_before_playing(policies, error, needle):
    """A misspelled role was a KeyError, a SPEC string an AttributeError, and another role's
    policy an IllegalActionError mid-match."""
    with pytest.raises(error, match=needle):
        Arena().play("task_1", 0, policies)


# ---------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained MaskablePPO models of the investigator (the slot policy) and the fraudster."""
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO

    from fraudarena_env import RoleEnv
    from fraudarena_env.slot_policy import SlotInvestigatorPolicy

    out = tmp_path_factory.mktemp("checkpoints")
    MaskablePPO(SlotInvestigatorPolicy, RoleEnv("investigator", task_id="task_1"), n_steps=64,
                batch_size=32, seed=0, device="cpu").save(str(out / "investigator.zip"))
    MaskablePPO("MlpPolicy", RoleEnv("fraudster", task_id="task_1"), n_steps=64, batch_size=32,
                seed=0, device="cpu").save(str(out / "fraudster.zip"))
    return out


def test_a_checkpoint_plays_its_role_and_reports_json(capsys, checkpoints):
    investigator, fraudster = checkpoints / "investigator.zip", checkpoints / "fraudster.zip"
    doc = evaluate_json(capsys, "--task", "task_1", "--seeds", "1000-1001", "--investigator",
                        str(investigator), "--fraudster", str(fraudster))
    learned = row_of(doc, "task_1", f"investigator={investigator}")
    assert learned["policies"] == {**cli.BASELINE_NAMES, "investigator": str(investigator)}
    assert learned["n_seeds"] == 2 and 0.0 <= learned["mean"]["grader"] <= 1.0
    assert row_of(doc, "task_1", f"fraudster={fraudster}")["mean"]["steps"] > 0


def test_a_checkpoint_of_another_role_is_refused(capsys, checkpoints):
    path = checkpoints / "fraudster.zip"
    assert cli.main(["evaluate", "--task", "task_1", "--seeds", "1", "--investigator", str(path),
                     "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{path} is not a checkpoint of the investigator" in err


def test_a_file_that_is_no_checkpoint_is_refused(capsys, tmp_path):
    pytest.importorskip("sb3_contrib")
    path = tmp_path / "notes.zip"
    path.write_text("not a zip")
    assert cli.main(["evaluate", "--task", "task_1", "--seeds", "1", "--auditor", str(path),
                     "--no-progress"]) == 1
    assert f"cannot load {path} as a MaskablePPO checkpoint" in capsys.readouterr().err


def test_a_policy_reused_across_matches_plays_each_seed_as_a_new_one_would():
    """The arena resets every policy it is given with the match's seed: one RandomPolicy for
    all seeds gave seed 1000 a result that depended on the seeds played before it."""
    from fraudarena_env.arena import evaluate_matches
    from fraudarena_env.policies import RandomPolicy

    shared = RandomPolicy("fraudster")
    fresh = evaluate_matches("task_1", [1000, 1001],
                             lambda seed: {"fraudster": RandomPolicy("fraudster", seed=seed)})
    forward = evaluate_matches("task_1", [1000, 1001], lambda seed: {"fraudster": shared})
    backward = evaluate_matches("task_1", [1001, 1000], lambda seed: {"fraudster": shared})
    assert forward == fresh
    assert backward == fresh[::-1]


@pytest.mark.parametrize("seeds, said", [([], "no seeds"),
                                         ([1000, 1001, 1000], r"seeds \[1000\] are given more")])
def test_an_evaluation_of_no_seed_or_of_a_seed_twice_is_refused(seeds, said):
    """A seed is one match: a repeat counted it twice and shrank the standard error (an empty
    list failed with an IndexError)."""
    from fraudarena_env.arena import evaluate

    with pytest.raises(ValueError, match=said):
        evaluate("task_1", seeds, lambda seed: {})


def test_a_seed_named_twice_on_the_command_line_is_a_usage_error():
    with pytest.raises(argparse.ArgumentTypeError, match="name 1 seed.* more than once .first: "
                                                         "1001"):
        cli.parse_seeds("1000-1001,1001")


def test_a_path_where_a_model_is_wanted_is_named_as_such():
    from fraudarena_env.sb3 import evaluate_models

    with pytest.raises(TypeError, match=r"models\['investigator'\] is a path .* give the "
                                        r"loaded model"):
        evaluate_models({"investigator": "investigator.zip"}, ["task_1"], [1000])


def test_a_model_that_reads_no_vector_is_refused_before_it_plays():
    """A model of a dict observation passed the role check and failed at its first move."""
    import gymnasium

    from fraudarena_env.role_env import WrongRoleError, check_role

    class DictModel:
        observation_space = gymnasium.spaces.Dict({"observation": gymnasium.spaces.Box(0, 1, (3,))})
        action_space = gymnasium.spaces.Discrete(977)

    with pytest.raises(WrongRoleError, match="reads a Dict observation; a player of the "
                                             "investigator reads the investigator's vector"):
        check_role(DictModel(), "investigator", "the model")
