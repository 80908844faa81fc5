"""PettingZoo's and Gymnasium's conventions, kept: one info dict per agent, ``human`` rendering
during play, wrappers whose space dicts agree with their space methods, the registries
(``pettingzoo.make``, ``gymnasium.make``) and ``illegal_action="terminate"``."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pettingzoo
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test
from pettingzoo.utils.wrappers import TerminateIllegalWrapper
from pydantic import BaseModel

import fraudarena_env
from fraudarena_env import IllegalActionError, RoleEnv, fraudarena_v0
from fraudarena_env.env import END_REASONS, INFO_KEYS
from fraudarena_env.rules.catalog import PHASES
from fraudarena_env.wrappers import (
    MaskedRoleEnv,
    RenameObservationKey,
    SharedSpaceWrapper,
    VectorObservation,
    rllib_multi_agent_env,
    shared_space_env,
)

AGENTS = ["fraudster", "investigator", "auditor"]


def masked_choice(mask: np.ndarray, rng: np.random.Generator) -> int:
    legal = np.flatnonzero(mask)
    return int(legal[rng.integers(len(legal))])


def play_legal_steps(env, n: int, seed: int = 0) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        agent = env.agent_selection
        env.step(masked_choice(env.observe(agent)["action_mask"], rng))
    return rng


# ----------------------------------------------------------------------------- infos
def test_each_agent_gets_its_own_info_dict_after_reset_and_after_every_step():
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(40):
        infos = list(env.infos.values())
        assert len({id(i) for i in infos}) == len(infos)
        # the same facts, in separate dicts, but each shows only its own agent's return
        shared = {k: v for k, v in infos[0].items() if not k.startswith("return_")}
        assert all({k: v for k, v in i.items() if not k.startswith("return_")} == shared
                   for i in infos)
        env.infos["fraudster"]["scratch"] = 1
        assert "scratch" not in env.infos["investigator"]
        assert "scratch" not in env.infos["auditor"]
        env.step(masked_choice(env.observe(env.agent_selection)["action_mask"], rng))
    assert set(env.infos["investigator"]) == set(INFO_KEYS)


def test_an_agents_info_shows_only_its_own_return_until_the_match_ends():
    """The investigator's total moves by the true label of each ad it rules on: in the
    fraudster's info it would tell the fraudster which organic ads were fraud. While the match
    runs each agent reads its own return and 0.0 for the others (as the server's sealed state);
    once it ends, every agent reads every total."""
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    seen_paid = False
    while not env.unwrapped.match_over:
        totals = dict(zip(env.possible_agents, env.unwrapped.referee.totals))
        for agent, info in env.infos.items():
            for role, total in totals.items():
                assert info[f"return_{role}"] == (total if role == agent else 0.0)
        seen_paid |= totals["investigator"] != 0.0
        env.step(masked_choice(env.observe(env.agent_selection)["action_mask"], rng))
    assert seen_paid  # the investigator earned something the others did not see
    totals = dict(zip(env.possible_agents, env.unwrapped.referee.totals))
    for info in env.infos.values():
        assert all(info[f"return_{role}"] == total for role, total in totals.items())


def test_infos_at_the_end_of_a_match_are_separate_dicts_too():
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=5)
    rng = np.random.default_rng(1)
    while not env.unwrapped.match_over:
        env.step(masked_choice(env.observe(env.agent_selection)["action_mask"], rng))
    infos = list(env.infos.values())
    assert len(infos) == 3 and len({id(i) for i in infos}) == 3


# ----------------------------------------------------------------------------- rendering
def test_human_render_prints_the_board_after_reset_and_after_every_step(capsys):
    env = fraudarena_v0.env(task_id="task_2", render_mode="human")
    env.reset(seed=11)
    assert capsys.readouterr().out.count("FraudArena task_2 |") == 1
    play_legal_steps(env, 5)
    out = capsys.readouterr().out
    assert out.count("FraudArena task_2 |") == 5
    assert out.rstrip().endswith(env.unwrapped._render_text().splitlines()[-1])


def test_ansi_and_no_render_mode_print_nothing_during_play(capsys):
    for mode in ("ansi", None):
        env = fraudarena_v0.env(task_id="task_2", render_mode=mode)
        env.reset(seed=11)
        play_legal_steps(env, 5)
        assert capsys.readouterr().out == ""


def test_role_env_in_human_mode_prints_once_per_learner_step(capsys):
    env = RoleEnv("investigator", task_id="task_1", render_mode="human")
    env.reset(seed=2)
    assert capsys.readouterr().out.count("FraudArena task_1 |") == 1
    rng = np.random.default_rng(0)
    for _ in range(4):
        env.step(masked_choice(env.action_masks(), rng))
    out = capsys.readouterr().out
    # the fraudster's turns in between are not printed: one board per learner step
    assert out.count("FraudArena task_1 |") == 4
    assert out.count("investigator_turn") == 4


def test_a_render_mode_the_role_env_does_not_have_is_refused():
    with pytest.raises(ValueError, match="render_mode"):
        RoleEnv("auditor", render_mode="rgb_array")


# ----------------------------------------------------------------------------- space dicts
WRAPPED = {
    "env": lambda: fraudarena_v0.env(task_id="task_1"),
    "raw_env": lambda: fraudarena_v0.raw_env(task_id="task_1"),
    "shared_space": lambda: shared_space_env(task_id="task_1"),
    "rename_key": lambda: RenameObservationKey(fraudarena_v0.env(task_id="task_1")),
    "rename_key_of_shared": lambda: RenameObservationKey(shared_space_env(task_id="task_1")),
    "shared_of_raw": lambda: SharedSpaceWrapper(fraudarena_v0.raw_env(task_id="task_1")),
    "vector_only": lambda: VectorObservation(fraudarena_v0.env(task_id="task_1")),
}


@pytest.mark.parametrize("name", sorted(WRAPPED))
def test_space_dicts_are_the_objects_the_space_methods_return(name):
    env = WRAPPED[name]()
    env.reset(seed=0)
    assert set(env.observation_spaces) == set(env.action_spaces) == set(AGENTS)
    for agent in AGENTS:
        assert env.observation_spaces[agent] is env.observation_space(agent)
        assert env.action_spaces[agent] is env.action_space(agent)
        assert env.observation_space(agent).contains(env.observe(agent))


def test_shared_space_dicts_report_the_padded_spaces():
    env = shared_space_env(task_id="task_3")
    inner = env.env
    n_max = max(inner.action_space(a).n for a in AGENTS)
    assert {s.n for s in env.action_spaces.values()} == {n_max}
    assert len({id(s) for s in env.observation_spaces.values()}) == 1
    assert env.observation_spaces["auditor"] != inner.observation_space("auditor")


def test_vector_observation_is_the_vector_and_keeps_the_mask_at_hand():
    plain, vector_only = fraudarena_v0.env(task_id="task_3"), VectorObservation(
        fraudarena_v0.env(task_id="task_3"))
    plain.reset(seed=4)
    vector_only.reset(seed=4)
    agent = plain.agent_selection
    np.testing.assert_array_equal(vector_only.observe(agent), plain.observe(agent)["observation"])
    np.testing.assert_array_equal(vector_only.action_mask(agent),
                                  plain.observe(agent)["action_mask"])


def test_masked_role_env_passes_check_env_and_carries_the_mask_in_the_observation():
    env = MaskedRoleEnv({"role": "fraudster", "task_id": "task_3"})
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=9)
    assert set(obs) == {"observations", "action_mask"}
    np.testing.assert_array_equal(obs["action_mask"].astype(bool), env.action_masks())
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(masked_choice(obs["action_mask"], rng))
        done = terminated or truncated
        assert env.observation_space.contains(obs)
    assert not obs["action_mask"].any()  # nothing is legal once the match is over


# ----------------------------------------------------------------------------- registries
def test_importing_the_package_registers_the_aec_env_with_pettingzoo():
    assert "fraudarena/fraudarena-v0" in pettingzoo.aec_registry
    env = pettingzoo.make("aec", "fraudarena/fraudarena-v0", task_id="task_3")
    assert isinstance(env, fraudarena_v0.FraudArenaOrderEnforcingWrapper)
    assert env.unwrapped.task_id == "task_3"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(env, num_cycles=200)


def test_pettingzoo_make_passes_max_cycles_on_to_the_env():
    env = pettingzoo.make("aec", "fraudarena/fraudarena-v0", max_cycles=7)
    assert env.unwrapped.max_cycles == 7


@pytest.mark.parametrize("role", AGENTS)
def test_importing_the_package_registers_each_role_with_gymnasium(role):
    env_id = f"fraudarena/{role.capitalize()}-v0"
    assert fraudarena_env.registration.GYMNASIUM_IDS[role] == env_id
    env = gymnasium.make(env_id, task_id="task_2")
    assert env.spec.id == env_id
    assert isinstance(env.unwrapped, RoleEnv) and env.unwrapped.role == role
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Gymnasium's checker passes with no warning either
        check_env(env.unwrapped)  # the render check remakes the env by id in every render mode
    # the made env (with gymnasium's passive checker) plays a whole masked episode
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    done, total = False, 0.0
    while not done:
        _, reward, terminated, truncated, info = env.step(
            masked_choice(env.unwrapped.action_masks(), rng))
        total += reward
        done = terminated or truncated
    assert total == pytest.approx(info["return"])


MAKERS = {  # how a Gymnasium user builds a seat from its id
    "make": lambda env_id, **kw: gymnasium.make(env_id, **kw),
    "make_vec": lambda env_id, **kw: gymnasium.make_vec(env_id, num_envs=2, **kw),
    "make_vec sync": lambda env_id, **kw: gymnasium.make_vec(
        env_id, num_envs=2, vectorization_mode="sync", **kw),
}


def _seat_roles(env) -> tuple[str, ...]:
    if isinstance(env, gymnasium.vector.VectorEnv):
        return env.unwrapped.get_attr("role")
    return (env.unwrapped.role,)


@pytest.mark.parametrize("maker", MAKERS)
def test_an_ids_role_is_fixed_a_role_keyword_for_another_is_refused(maker):
    """``role=`` overrode the id's registered role: Investigator-v0 built the fraudster's seat."""
    make = MAKERS[maker]
    with pytest.raises(ValueError, match=r"role='fraudster' was given for "
                       r"'fraudarena/Investigator-v0', the investigator's seat.*"
                       r"use 'fraudarena/Fraudster-v0'"):
        make("fraudarena/Investigator-v0", role="fraudster", task_id="task_1")
    with pytest.raises(ValueError, match=r"role='bogus'.*leave role= out; each role's id is .*'fraudarena/Auditor-v0'"):
        make("fraudarena/Auditor-v0", role="bogus", task_id="task_1")
    env = make("fraudarena/Investigator-v0", role="investigator", task_id="task_1")
    assert set(_seat_roles(env)) == {"investigator"}  # the id's own role is taken
    assert set(_seat_roles(make("fraudarena/Auditor-v0", task_id="task_1"))) == {"auditor"}


def test_the_ids_entry_points_keep_role_env_s_render_modes_and_remake_from_the_spec():
    """``gymnasium.make`` reads the entry point's metadata to wrap ``*_list`` render modes."""
    env = gymnasium.make("fraudarena/Fraudster-v0", render_mode="ansi_list", task_id="task_1")
    assert isinstance(env, gymnasium.wrappers.RenderCollection)
    again = gymnasium.make(gymnasium.make("fraudarena/Auditor-v0", task_id="task_2").spec)
    assert again.unwrapped.role == "auditor" and again.spec.kwargs["task_id"] == "task_2"


def test_registering_again_keeps_the_ids_and_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fraudarena_env.registration.register()
    assert gymnasium.spec("fraudarena/Auditor-v0").kwargs == {"role": "auditor"}


# ----------------------------------------------------------------------------- terminate mode
def test_terminate_mode_ends_the_match_for_everyone_and_charges_only_the_offender():
    env = fraudarena_v0.env(task_id="task_3", illegal_action="terminate")
    env.reset(seed=7)
    play_legal_steps(env, 12)
    offender = env.agent_selection
    before = dict(env.unwrapped.match_summary()["returns"])
    owed = dict(env._cumulative_rewards)  # rewards not yet collected with last()
    bad = int(np.flatnonzero(env.observe(offender)["action_mask"] == 0)[0])
    env.step(bad)
    assert all(env.terminations.values()) and not any(env.truncations.values())
    summary = env.unwrapped.match_summary()
    assert summary["end_reason"] == "illegal_action"
    assert offender in summary["illegal_action"] and str(bad) in summary["illegal_action"]
    assert summary["grader_score"] is None
    for agent in AGENTS:
        charge = -1.0 if agent == offender else 0.0
        assert summary["returns"][agent] == pytest.approx(before[agent] + charge)
    info = env.infos[offender]
    assert END_REASONS[info["end_reason"]] == "illegal_action" and not info["has_grader"]
    collected = {}
    for agent in env.agent_iter():
        _, reward, terminated, _, _ = env.last()
        assert terminated
        collected[agent] = reward
        env.step(None)
    assert set(collected) == set(AGENTS)
    for agent in AGENTS:
        expected = -1.0 if agent == offender else owed[agent]
        assert collected[agent] == pytest.approx(expected)


def test_terminate_mode_rewards_match_pettingzoos_terminate_illegal_wrapper():
    """The same legal steps then one illegal action: our mode and PettingZoo's wrapper (around
    the raise-mode env, which it never lets see the illegal action) pay every agent the same."""
    ours = fraudarena_v0.env(task_id="task_1", illegal_action="terminate", illegal_reward=-1.0)
    theirs = TerminateIllegalWrapper(fraudarena_v0.raw_env(task_id="task_1"), illegal_reward=-1.0)
    paid = []
    for env in (ours, theirs):
        env.reset(seed=21)
        rng = np.random.default_rng(3)
        rewards: dict[str, list[float]] = {a: [] for a in AGENTS}
        steps = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the wrapper warns on the illegal move
            for agent in env.agent_iter():
                obs, reward, terminated, truncated, _ = env.last()
                rewards[agent].append(round(reward, 9))
                if terminated or truncated:
                    env.step(None)
                    continue
                steps += 1
                mask = obs["action_mask"]
                action = masked_choice(mask, rng) if steps < 15 else \
                    int(np.flatnonzero(mask == 0)[0])
                env.step(action)
        paid.append(rewards)
    assert paid[0] == paid[1]


def test_terminate_mode_takes_unmasked_random_actions_without_an_error():
    env = fraudarena_v0.env(task_id="task_3", illegal_action="terminate")
    for seed in range(5):
        env.reset(seed=seed)
        env.action_space("fraudster").seed(seed)
        for agent in env.agent_iter():
            _, _, terminated, truncated, _ = env.last()
            env.step(None if terminated or truncated else env.action_space(agent).sample())
        assert env.unwrapped.match_over


def test_terminate_mode_ends_on_an_invalid_action_model_too():
    env = fraudarena_v0.env(task_id="task_1", illegal_action="terminate", illegal_reward=-2.5)
    env.reset(seed=0)
    env.step({"action_type": "verdict"})  # a fraudster cannot give a verdict
    assert env.unwrapped.match_summary()["returns"]["fraudster"] == -2.5
    assert all(env.terminations.values())


def end_on_an_illegal_action(read_text_first: bool = False):
    """A task_3 match in terminate mode, ended by an unmasked action after 12 legal steps;
    ``read_text_first``: the text face was read before (the referee records events from then
    on; else it replays the ops played when first asked). Returns the env and the offender."""
    env = fraudarena_v0.env(task_id="task_3", illegal_action="terminate")
    env.reset(seed=7)
    play_legal_steps(env, 12)
    if read_text_first:
        env.unwrapped.role_observation("fraudster")
    offender = env.agent_selection
    env.step(int(np.flatnonzero(env.observe(offender)["action_mask"] == 0)[0]))
    return env, offender


def test_terminate_mode_ends_the_match_in_the_referee_state_with_the_totals_of_the_infos():
    env, offender = end_on_an_illegal_action()
    state = env.unwrapped.referee.state
    info = env.infos[offender]
    assert state.phase == "done" and PHASES[info["phase"]] == "done"
    assert state.end_reason == "illegal_action" and state.grader_score is None
    assert [state.fraudster_reward, state.investigator_reward, state.auditor_reward] == \
        pytest.approx([info[f"return_{agent}"] for agent in AGENTS])


@pytest.mark.parametrize("read_text_first", [False, True], ids=["replayed", "recorded"])
def test_terminate_mode_ends_the_match_in_every_role_observation_of_the_text_face(
        read_text_first):
    env, offender = end_on_an_illegal_action(read_text_first)
    info = env.infos[offender]
    for agent in AGENTS:
        obs = env.unwrapped.role_observation(agent)
        assert obs.done and obs.phase == "done"
        assert obs.reward == pytest.approx(info[f"return_{agent}"])
    feedback = env.unwrapped.role_observation(offender).feedback
    assert feedback.startswith("illegal action (") and feedback.endswith(
        "charged -1.0; the match is over")


class _NotAnAction(BaseModel):
    """A pydantic model, but none of the action models."""

    action_type: str = "end_turn"


@pytest.mark.parametrize("mode", ["raise", "penalize", "terminate"])
@pytest.mark.parametrize("action", [None, "end_turn", 3.0, [3], np.float32(3), _NotAnAction()])
def test_what_is_no_action_of_either_face_raises_in_every_mode_and_changes_nothing(mode, action):
    """Not an index, an action model or a dict (a live agent's None, a string, a float, a list,
    a framework's tensor, a pydantic model of the caller's own): a caller's mistake, never a
    move to charge or to end the match on."""
    env = fraudarena_v0.env(task_id="task_1", illegal_action=mode)
    env.reset(seed=0)
    before = env.observe("fraudster")["observation"].tobytes()
    with pytest.raises(IllegalActionError, match="fraudster"):
        env.step(action)
    assert not any(env.terminations.values()) and env.agent_selection == "fraudster"
    assert env.observe("fraudster")["observation"].tobytes() == before
    assert env.unwrapped.match_summary()["returns"]["fraudster"] == 0.0


def test_an_int_subclass_is_an_index_and_a_bool_is_not():
    """An IntEnum naming actions is an index (it was refused as 'got Action'); True is not."""
    import enum

    a, b = fraudarena_v0.env(task_id="task_1"), fraudarena_v0.env(task_id="task_1")
    a.reset(seed=0)
    b.reset(seed=0)
    legal = int(np.flatnonzero(a.observe("fraudster")["action_mask"])[0])
    Action = enum.IntEnum("Action", {"FIRST_LEGAL": legal})
    a.step(Action.FIRST_LEGAL)
    b.step(legal)
    assert a.observe("investigator")["observation"].tobytes() == \
        b.observe("investigator")["observation"].tobytes()
    assert a.unwrapped.referee.step_count == 1
    with pytest.raises(IllegalActionError, match="got bool"):
        a.step(True)


def test_role_env_terminate_mode_ends_the_learners_episode_with_the_charge():
    env = RoleEnv("investigator", task_id="task_1", illegal_action="terminate")
    env.reset(seed=4)
    bad = int(np.flatnonzero(~env.action_masks())[0])
    _, reward, terminated, truncated, info = env.step(bad)
    assert terminated and not truncated
    assert reward == pytest.approx(-1.0)
    assert info["return"] == pytest.approx(-1.0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_role_env_terminate_mode_reports_the_charge_in_the_referee_state_too():
    env = RoleEnv("investigator", task_id="task_1", illegal_action="terminate")
    env.reset(seed=4)
    _, _, _, _, info = env.step(int(np.flatnonzero(~env.action_masks())[0]))
    state = env.referee.state
    assert state.phase == "done" and state.end_reason == "illegal_action"
    assert state.investigator_reward == pytest.approx(info["return"])


def test_rllib_multi_agent_env_terminates_on_illegal_actions_and_shows_vectors():
    env = rllib_multi_agent_env(task_id="task_1")
    assert env.unwrapped.illegal_action == "terminate"
    env.reset(seed=0)
    assert isinstance(env.observation_space("fraudster"), gymnasium.spaces.Box)


def test_an_unknown_illegal_action_mode_is_refused():
    with pytest.raises(ValueError, match="illegal_action must be one of"):
        fraudarena_v0.env(illegal_action="ignore")


def test_the_package_ships_its_type_annotations_marker():
    """PEP 561: a type checker reads an installed package's annotations (the pydantic models,
    the env's and the rules' signatures) only if it ships ``py.typed``."""
    import tomllib
    from pathlib import Path

    package = Path(fraudarena_env.__file__).parent
    assert (package / "py.typed").is_file()
    config = tomllib.loads((package.parent / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["fraudarena_env"]
