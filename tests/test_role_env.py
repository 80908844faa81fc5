"""RoleEnv: the single-learner gymnasium view, its opponents, rewards and SB3 compatibility."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from fraudarena_env import IllegalActionError, RoleEnv, fraudarena_v0
from fraudarena_env.faces.encoding import N_ACTIONS
from fraudarena_env.policies import Policy, RandomPolicy
from fraudarena_env.rules.catalog import PHASES

ROLES = ["fraudster", "investigator", "auditor"]


def _legal(mask: np.ndarray, rng: np.random.Generator) -> int:
    legal = np.flatnonzero(mask)
    return int(legal[rng.integers(len(legal))])


def run_episode(env: RoleEnv, seed: int | None, rng: np.random.Generator) -> dict:
    obs, info = env.reset(seed=seed)
    trace = [obs.tobytes()]
    total, steps = 0.0, 0
    while True:
        mask = env.action_masks()
        assert mask.dtype == bool and mask.any()
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(_legal(mask, rng))
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        trace.append((obs.tobytes(), reward, terminated, truncated))
        total += reward
        steps += 1
        if terminated or truncated:
            assert not env.action_masks().any()
            return {"total": total, "info": info, "trace": trace, "steps": steps}


@pytest.mark.parametrize("role", ROLES)
def test_gymnasium_check_env(role):
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*environment not having a spec.*")
        check_env(RoleEnv(role))
        check_env(RoleEnv(role, task_id="task_3", render_mode="ansi"))


@pytest.mark.parametrize("role", ROLES)
def test_sb3_check_env(role):
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(RoleEnv(role, task_id="task_2"))
    assert not [str(w.message) for w in caught if "stable_baselines3" in (w.filename or "")]


@pytest.mark.parametrize("role", ROLES)
def test_spaces(role):
    env = RoleEnv(role)
    assert env.action_space.n == N_ACTIONS[role]
    assert env.observation_space is env.env.observation_space(role)["observation"]
    assert env.observation_space.dtype == np.float32


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_returns_match_the_match_totals(role, task_id):
    env = RoleEnv(role, task_id=task_id)
    rng = np.random.default_rng(0)
    for seed in range(4):
        out = run_episode(env, seed, rng)
        info = out["info"]
        ref = env.referee
        assert out["total"] == pytest.approx(info["return"], abs=1e-9)
        assert info["return"] == pytest.approx(ref.totals[ROLES.index(role)], abs=1e-9)
        assert info["end_reason"] >= 0 and info["has_grader"]
        assert 0.0 <= info["grader_score"] <= 1.0
        assert info[f"return_{role}"] == info["return"]
        assert {f"return_{r}" for r in ROLES} <= set(info)


@pytest.mark.parametrize("role", ROLES)
def test_seeded_reset_is_deterministic(role):
    a, b = RoleEnv(role, task_id="task_3"), RoleEnv(role, task_id="task_3")
    ta = run_episode(a, 17, np.random.default_rng(1))["trace"]
    # another episode in between must not matter: opponents are reseeded from the reset seed
    run_episode(b, 99, np.random.default_rng(2))
    tb = run_episode(b, 17, np.random.default_rng(1))["trace"]
    assert ta == tb
    # unseeded resets continue deterministically from the last seeded one
    a.reset(seed=5)
    b.reset(seed=5)
    assert run_episode(a, None, np.random.default_rng(3))["trace"] == \
        run_episode(b, None, np.random.default_rng(3))["trace"]


def test_opponent_kinds():
    calls = []

    def first_legal(vector, mask):
        calls.append(vector.shape)
        return int(np.flatnonzero(mask)[0])

    class LastLegal(Policy):
        def act_tensor(self, vector, mask):
            return int(np.flatnonzero(mask)[-1])

    env = RoleEnv("investigator", opponents={"fraudster": first_legal, "auditor": LastLegal()})
    out = run_episode(env, 0, np.random.default_rng(0))
    assert calls and out["steps"] > 0
    env = RoleEnv("auditor", opponents={"fraudster": "random", "investigator": "scripted"})
    run_episode(env, 0, np.random.default_rng(0))
    env = RoleEnv("fraudster", opponents={"investigator": RandomPolicy("investigator"),
                                          "auditor": "random"})
    run_episode(env, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="learning role"):
        RoleEnv("fraudster", opponents={"fraudster": "random"})
    with pytest.raises(ValueError, match="unknown opponent role"):
        RoleEnv("fraudster", opponents={"referee": "random"})
    with pytest.raises(ValueError, match="unknown opponent"):
        RoleEnv("fraudster", opponents={"auditor": "clever"})
    with pytest.raises(TypeError):
        RoleEnv("fraudster", opponents={"auditor": 3})
    with pytest.raises(ValueError, match="unknown role"):
        RoleEnv("referee")


def test_sb3_model_as_opponent():
    from sb3_contrib import MaskablePPO

    fraudster_model = MaskablePPO("MlpPolicy", RoleEnv("fraudster"), n_steps=64, batch_size=32,
                                  seed=0)
    env = RoleEnv("investigator", opponents={"fraudster": fraudster_model})
    run_episode(env, 0, np.random.default_rng(0))


def test_illegal_actions():
    env = RoleEnv("investigator", task_id="task_3")  # penalize by default
    env.reset(seed=0)
    bad = int(np.flatnonzero(~env.action_masks())[0])
    steps = env.referee.step_count
    _, reward, *_ = env.step(bad)
    assert env.referee.step_count > steps
    strict = RoleEnv("investigator", task_id="task_3", illegal_action="raise")
    strict.reset(seed=0)
    before = strict.referee.state.model_dump_json()
    with pytest.raises(IllegalActionError):
        strict.step(bad)
    assert strict.referee.state.model_dump_json() == before
    strict.step(int(np.flatnonzero(strict.action_masks())[0]))


def test_text_face_and_render():
    env = RoleEnv("investigator", task_id="task_1", render_mode="ansi")
    env.reset(seed=3)
    model = env.role_observation()
    assert model.available_ads
    obs, *_ = env.step({"action_type": "investigate", "ad_id": model.available_ads[0],
                        "investigation_target": "landing_page"})
    assert "FraudArena task_1" in env.render()
    assert env.decode_action(int(np.flatnonzero(env.action_masks())[0])) is not None
    env.close()


def test_the_learners_board_shows_only_what_its_role_may_see():
    """render() is shown to players (an LLM harness prints it into the prompt): the
    investigator's board must not mark the fraudster's proposals or show the others' returns,
    nor list the ads its observation hides; the fraudster's marks its own ads. The spectator's
    board (the AEC env's render()) shows everything."""
    inv = RoleEnv("investigator", task_id="task_3", render_mode="ansi")
    inv.reset(seed=7)
    assert inv.referee.is_proposal[inv.referee.present].any()  # proposals are in the queue
    board = inv.render()
    assert "*" not in board and "investigator +0.00" in board
    assert not re.search(r"(fraudster|auditor) [+-]\d", board)
    seen = set(inv.role_observation().available_ads)
    listed = {line.split()[0] for line in board.splitlines() if line.startswith("ad_")}
    assert listed == seen | {d["ad_id"] for d in inv.role_observation().decided_ads}
    spectator = inv.env._render_text()
    assert "*" in spectator and "fraudster +" in spectator
    fr = RoleEnv("fraudster", task_id="task_3", render_mode="ansi")
    fr.reset(seed=7)
    while not fr.referee.is_proposal.any():
        fr.step(int(np.flatnonzero(fr.action_masks())[0]))
    assert "*" in fr.render() and not re.search(r"investigator [+-]\d", fr.render())
    with pytest.raises(ValueError, match="unknown agent"):
        inv.env.board("spectator")


def test_the_boards_show_the_links_the_audit_and_the_grade_only_to_whom_the_sealed_state_does():
    """The investigator's links are not the fraudster's to see; the auditor sees nothing before
    play is over; the audit and the grade are the auditor's until the match ends."""
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=0)
    raw, rng = env.unwrapped, np.random.default_rng(0)
    seen = {"links": False, "audit": False}
    while not raw.match_over:
        ref = raw.referee
        boards = {role: raw.board(role) for role in env.possible_agents}
        if ref.links:
            seen["links"] = True
            assert "links:" in boards["investigator"] and "links:" not in boards["fraudster"]
        if ref.phase in ("fraudster_turn", "investigator_turn"):
            assert not any(line.startswith("ad_") for line in boards["auditor"].splitlines())
            assert "links:" not in boards["auditor"]
        else:
            seen["audit"] = True
            assert "grader" in boards["auditor"] and "ad_" in boards["auditor"]
            for role in ("fraudster", "investigator"):
                assert "grader" not in boards[role] and "audit flags" not in boards[role]
        env.step(int(rng.choice(np.flatnonzero(env.observe(env.agent_selection)["action_mask"]))))
    assert seen == {"links": True, "audit": True}
    assert "grader" in raw.board("fraudster")  # the match is over: everything shows


def test_step_after_end_needs_reset():
    env = RoleEnv("auditor")
    out = run_episode(env, 0, np.random.default_rng(0))
    assert PHASES[out["info"]["phase"]] == "done"
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_maskable_ppo_smoke():
    from sb3_contrib import MaskablePPO

    env = RoleEnv("investigator", task_id="task_1")
    model = MaskablePPO("MlpPolicy", env, n_steps=256, batch_size=64, n_epochs=2, seed=0,
                        verbose=0)
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    obs, _ = env.reset(seed=123)
    done = False
    while not done:
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    assert info["has_grader"] and info["return"] == info["return_investigator"]


def test_a_cut_before_the_learners_first_turn_says_to_raise_max_cycles():
    with pytest.raises(RuntimeError, match="max_cycles=3 cut it first; give RoleEnv a larger"):
        RoleEnv("auditor", max_cycles=3).reset(seed=0)


@pytest.mark.parametrize("seed", [np.int64(17), np.uint32(17)])
def test_a_numpy_integer_seed_plays_the_same_match_as_the_int(seed):
    a, b = RoleEnv("investigator"), RoleEnv("investigator")
    assert a.reset(seed=seed)[0].tobytes() == b.reset(seed=17)[0].tobytes()
    assert a.match_seed == 17 and type(a.match_seed) is int


@pytest.mark.parametrize("seed", [True, -1, 2**63, 7.0, "7"])
def test_a_seed_that_is_not_a_match_seed_is_refused_with_the_rule(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\) or None"):
        RoleEnv("investigator").reset(seed=seed)


@pytest.mark.parametrize("seed", [None, 5])
def test_a_refused_reset_leaves_the_seed_stream_as_it_was(seed):
    def next_match(refuse: bool) -> int:
        env = RoleEnv("investigator")
        env.reset(seed=1)
        if refuse:
            with pytest.raises(ValueError, match="max_rounds must be an integer"):
                env.reset(seed=seed, options={"max_rounds": 0})
        env.reset()
        return env.match_seed

    assert next_match(refuse=True) == next_match(refuse=False)


def test_after_an_opponent_raised_the_learners_action_is_not_played_for_the_opponent(
        failing_opponent):
    """An opponent whose move raised left the match on its turn; the learner's next step was
    then played as the opponent's move (an investigator's index as the fraudster's edit)."""
    env = RoleEnv("investigator", opponents={"fraudster": failing_opponent})
    env.reset(seed=0)
    failing_opponent.fail_next()
    with pytest.raises(ConnectionError):
        env.step(int(np.flatnonzero(env.action_masks())[-1]))  # end_turn: the fraudster moves
    steps = env.referee.step_count
    with pytest.raises(RuntimeError, match="it is fraudster's move, not investigator's"):
        env.step(0)
    assert env.referee.step_count == steps
    env.reset(seed=0)  # and a reset plays on
    assert env.action_masks().any()


def test_a_baseline_of_another_role_is_refused_as_an_opponent():
    from fraudarena_env.policies import HeuristicAuditor

    with pytest.raises(ValueError, match="HeuristicAuditor plays auditor, not fraudster"):
        RoleEnv("investigator", opponents={"fraudster": HeuristicAuditor()})
    with pytest.raises(ValueError, match="plays investigator, not auditor"):
        RoleEnv("fraudster", opponents={"auditor": RandomPolicy("investigator")})


@pytest.mark.parametrize("opponents", ["random", ["random", "scripted"]])
def test_opponents_that_are_not_a_dict_are_refused_with_the_shape_to_use(opponents):
    with pytest.raises(TypeError, match=r"opponents must be a dict role -> opponent"):
        RoleEnv("investigator", opponents=opponents)


def test_an_sb3_model_of_another_role_is_refused_as_an_opponent():
    from stable_baselines3 import PPO

    auditor_model = PPO("MlpPolicy", RoleEnv("auditor"), n_steps=64, batch_size=32)
    with pytest.raises(ValueError, match="is not a checkpoint of the fraudster: its model reads"):
        RoleEnv("investigator", opponents={"fraudster": auditor_model})


@pytest.mark.parametrize("role", [["investigator"], {"investigator": 1}])
def test_a_role_that_is_not_a_name_is_refused_with_the_roles(role):
    with pytest.raises(ValueError, match=r"unknown role .*; roles are \['fraudster'"):
        RoleEnv(role)


def test_an_unknown_keyword_is_named_as_roleenvs_not_the_inner_envs():
    with pytest.raises(TypeError, match=r"RoleEnv got unexpected keyword argument\(s\) "
                                        r"\['bogus_knob'\]; .* match knobs \['max_rounds'"):
        RoleEnv("investigator", bogus_knob=1)
