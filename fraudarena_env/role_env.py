"""A single-agent view of FraudArena: one learning role, the other two played by opponents.

``RoleEnv(role, opponents=None, task_id="task_1", **cfg)`` is a ``gymnasium.Env``:

* ``observation_space`` is the role's observation Box (the vector only), ``action_space`` its
  ``Discrete(N)``, and ``action_masks()`` returns the current legal-action mask (bool), which is
  what sb3-contrib's ``MaskablePPO`` looks for;
* after ``reset`` and after every ``step`` the other roles are advanced until it is the learner's
  turn again or the match ends; the rewards the learner earns meanwhile (e.g. the terminal rewards
  delivered on the auditor's report) are returned by its next ``step``, so the episode return is
  the learner's match total;
* ``terminated`` when the match is over, ``truncated`` on the env's safety bound (``max_cycles``);
* ``info`` has the AEC env's keys (numbers only, the same keys on every step: ``phase``,
  ``round``, ``end_reason``, ``has_grader``, ``grader_score``, ``return_<role>``; see
  :mod:`fraudarena_env.env`) plus ``return``, the learner's match total so far. The same in words:
  ``env.env.match_summary()``.

Opponents: a dict ``role -> opponent`` for any of the two other roles; roles left out get the
scripted baselines (``ReactiveFraudster``, ``ScriptedInvestigator``, ``HeuristicAuditor``). An
opponent may be

* a :class:`~fraudarena_env.policies.Policy` (``act(vector, mask) -> int``), reseeded on every
  ``reset`` from the match seed, so a seeded reset replays exactly;
* a plain callable ``f(vector, mask) -> int``;
* a Stable-Baselines3 model (anything with ``predict``), playing deterministically and kept to
  the mask (``model_actions``): ``predict(vector, action_masks=mask, deterministic=True)`` for
  maskable models; a model that knows no masks (PPO, A2C, DQN) plays the legal action its logits
  or Q-values score highest;
* the strings ``"scripted"`` or ``"random"``.

An opponent whose move raises stops the match at that move: the error reaches the caller of
``reset`` or ``step``, and ``step`` then refuses (it never plays the learner's action as the
opponent's) until ``reset``.

Illegal actions. Unlike the AEC env, ``RoleEnv`` defaults to ``illegal_action="penalize"``: an
action outside the mask (unmasked algorithms, gymnasium's ``check_env``) is charged a small
negative reward and uses up the action. Pass ``illegal_action="raise"`` to get
``IllegalActionError`` instead, or ``illegal_action="terminate"`` to end the episode on it with
``illegal_reward`` (default ``-1.0``) charged to whoever made it (the learner's step then returns
``terminated=True``; an opponent's illegal action ends the learner's episode with no charge to
the learner).

Rendering. ``render_mode="human"`` prints the board after ``reset`` and after every learner step
(the board the learner then faces, as its role may see it: ``raw_env.board``); ``"ansi"``
returns it from ``render()``.

Gymnasium ids. ``import fraudarena_env`` registers ``fraudarena/Fraudster-v0``,
``fraudarena/Investigator-v0`` and ``fraudarena/Auditor-v0``: ``gymnasium.make(id, **kwargs)`` is
``RoleEnv(role, **kwargs)`` for the id's role (a ``role=`` for another role is refused).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np

from .env import AGENTS, DEFAULT_ILLEGAL_REWARD, DEFAULT_MAX_CYCLES, raw_env
from .faces.encoding import N_ACTIONS, Observer
from .rules.catalog import MATCH_KNOBS
from .rules.referee import check_match_seed

ROLE_INDEX = {r: i for i, r in enumerate(AGENTS)}


def default_opponent(role: str, seed: int | None = None):
    """The scripted baseline for ``role``."""
    from .policies import BASELINES

    return BASELINES[role](seed=seed)


def _make_actor(role: str, opponent: Any) -> tuple[Callable[[np.ndarray, np.ndarray], int], Any]:
    """(act(vector, mask) -> int, object to reseed or None) for one opponent."""
    from .policies import Policy, RandomPolicy

    if opponent is None or (isinstance(opponent, str) and opponent == "scripted"):
        opponent = default_opponent(role)
    elif isinstance(opponent, str):
        if opponent != "random":
            raise ValueError(f"unknown opponent {opponent!r} for {role}: use 'scripted', "
                             "'random', a Policy, a callable or an SB3 model")
        opponent = RandomPolicy(role)
    if isinstance(opponent, Policy):
        opponent.check_plays(role, f"the {role} opponent")
        return opponent.act, opponent
    if hasattr(opponent, "predict"):
        check_role(opponent, role, f"the {role} opponent ({type(opponent).__name__})")
        predict = model_actions(opponent)

        def act_sb3(vector, mask):
            vectors = np.asarray(vector, np.float32).reshape(1, -1)
            return int(predict(vectors, np.asarray(mask, bool).reshape(1, -1))[0])
        return act_sb3, None
    if callable(opponent):
        return opponent, None
    raise TypeError(f"opponent for {role} must be a Policy, a callable (vector, mask) -> int, an "
                    f"SB3 model or 'scripted'/'random'; got {type(opponent).__name__}")


class WrongRoleError(ValueError):
    """A model whose spaces are not those of the role it is asked to play."""


def check_role(model, role: str, name: str) -> None:
    """Raise ``WrongRoleError`` unless ``model`` reads ``role``'s observation vector and picks
    among its actions (a model trained for another role, or on another layout, would fail only
    at its first move, or play nonsense)."""
    space = getattr(model, "observation_space", None)
    if space is None:
        return
    if not isinstance(space, gymnasium.spaces.Box):  # (it failed only at its first move)
        raise WrongRoleError(f"{name} reads a {type(space).__name__} observation; a player of the "
                             f"{role} reads the {role}'s vector, a Box of "
                             f"{Observer(role).size} floats (train it on RoleEnv, or on the "
                             f"observation key of a masked env)")
    got = (int(np.prod(space.shape)), int(getattr(model.action_space, "n", -1)))
    want = (Observer(role).size, N_ACTIONS[role])
    if got != want:
        raise WrongRoleError(f"{name} is not a checkpoint of the {role}: its model reads {got[0]} "
                             f"floats and picks among {got[1]} actions; the {role} has {want[0]} "
                             f"and {want[1]}")


def model_actions(model) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``act(vectors, masks) -> actions`` for an SB3 model, (k, D) float32 and (k, A) bool to
    (k,) int64, its deterministic choices kept to the mask: a MaskablePPO model is given the
    masks; a model that knows none (PPO, A2C, DQN) plays the legal action it scores highest,
    from its action logits or Q-values. A model with neither is refused."""
    try:
        maskable = "action_masks" in inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        maskable = False
    if maskable:
        def act(vectors, masks):
            action, _ = model.predict(vectors, action_masks=masks, deterministic=True)
            return np.asarray(action, np.int64).reshape(len(masks))
        return act
    policy = getattr(model, "policy", None)
    if not (hasattr(policy, "get_distribution") or hasattr(policy, "q_net")):
        raise ValueError(f"a {type(model).__name__} opponent must keep to the action mask: "
                         "through MaskablePPO's masks, or an actor-critic's logits or a "
                         "Q-network's values; it has none of them")

    def best_legal(vectors, masks):
        import torch

        with torch.no_grad():
            obs = torch.as_tensor(vectors)
            if hasattr(policy, "get_distribution"):
                scores = policy.get_distribution(obs).distribution.logits
            else:
                scores = policy.q_net(obs)
        return np.argmax(np.where(masks, scores.numpy(), -np.inf), axis=1).astype(np.int64)
    return best_legal


def match_seed_or_none(seed: Any) -> int | None:
    """``seed`` as a plain int (numpy integers too: gymnasium's seeding takes only ``int``), or a
    ValueError under the AEC env's rule for a match seed."""
    return None if seed is None else check_match_seed(seed)


def _derived_seed(match_seed: int, role: str) -> int:
    state = np.random.SeedSequence([match_seed, 1 + ROLE_INDEX[role]]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def opponent_dict(role: str, opponents: Mapping[str, Any] | None) -> dict[str, Any]:
    """``opponents`` as a dict other role -> spec, or the error naming what is wrong with it."""
    if opponents is not None and not isinstance(opponents, Mapping):
        raise TypeError(f"opponents must be a dict role -> opponent, such as "
                        f"{{'fraudster': 'random'}}; got {type(opponents).__name__}")
    opponents = dict(opponents or {})
    bad = set(opponents) - set(AGENTS)
    if bad:
        raise ValueError(f"unknown opponent role(s) {sorted(bad)}; roles are {list(AGENTS)}")
    if role in opponents:
        raise ValueError(f"{role!r} is the learning role; it cannot also be an opponent")
    return opponents


class RoleEnv(gymnasium.Env):
    """FraudArena from one role's seat (see the module docstring)."""

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}

    def __init__(self, role: str, opponents: Mapping[str, Any] | None = None,
                 task_id: str = "task_1", render_mode: str | None = None,
                 illegal_action: str = "penalize", max_cycles: int = DEFAULT_MAX_CYCLES,
                 illegal_reward: float = DEFAULT_ILLEGAL_REWARD, **knobs: Any):
        if not isinstance(role, str) or role not in ROLE_INDEX:
            raise ValueError(f"unknown role {role!r}; roles are {list(AGENTS)}")
        unknown = sorted(set(knobs) - set(MATCH_KNOBS))
        if unknown:  # (raw_env would name itself, which the caller never called)
            raise TypeError(f"RoleEnv got unexpected keyword argument(s) {unknown}; besides its "
                            f"own, it takes the match knobs {list(MATCH_KNOBS)}")
        opponents = opponent_dict(role, opponents)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of "
                             f"{self.metadata['render_modes']}, not {render_mode!r}")
        self.role = role
        self.render_mode = render_mode
        # In human mode this view prints once per learner step; the AEC env would print on every
        # opponent step too, so it renders to text and this view prints.
        self.env = raw_env(task_id=task_id,
                           render_mode="ansi" if render_mode == "human" else render_mode,
                           illegal_action=illegal_action, max_cycles=max_cycles,
                           illegal_reward=illegal_reward, **knobs)
        self.observation_space = self.env.observation_space(role)["observation"]
        self.action_space = self.env.action_space(role)
        self._actors: dict[str, Callable] = {}
        self._reseed: dict[str, Any] = {}
        for other in AGENTS:
            if other == role:
                continue
            self._actors[other], self._reseed[other] = _make_actor(other, opponents.get(other))
        self.opponents = {r: opponents.get(r, self._reseed.get(r)) for r in self._actors}
        self._carry = 0.0
        self._over = True
        self._return_key = f"return_{role}"
        self.match_seed: int | None = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = match_seed_or_none(seed)
        self.env.match_config(options)  # a refused option leaves the seed stream as it was
        super().reset(seed=seed)
        match_seed = seed if seed is not None else \
            int(self.np_random.integers(0, 2**63 - 1))
        env = self.env
        env.reset(seed=match_seed, options=options)
        self.match_seed = match_seed
        for other, policy in self._reseed.items():
            if policy is not None:
                policy.reset(seed=_derived_seed(match_seed, other))
        self._over = False
        self._advance()
        # rewards earned before the learner's first turn are paid with its first step
        self._carry = env._cumulative_rewards[self.role]
        if self._over:
            if env._illegal_error is not None:
                why = f" ({env._illegal_error})"
            elif env._truncated_by:
                why = (f": max_cycles={env.max_cycles} cut it first; give RoleEnv a larger "
                       "max_cycles (a cycle is a step of each agent, and the auditor acts only "
                       "once play is over)")
            else:
                why = ""
            raise RuntimeError(f"the match ended before {self.role}'s first turn{why}")
        if self.render_mode == "human":
            print(env.board(self.role))
        return env._vector(self.role).copy(), self._info()

    def step(self, action):
        if self._over:
            raise RuntimeError("the episode is over; call reset()")
        env = self.env
        if env.agent_selection != self.role:  # an opponent's move raised and stopped the match
            raise RuntimeError(f"it is {env.agent_selection}'s move, not {self.role}'s: an "
                               "opponent's move raised an error, and the match stopped before "
                               "it; call reset()")
        if isinstance(action, np.ndarray):
            action = action.reshape(-1)[0] if action.size == 1 else action
        env.step(action)
        self._advance()
        role = self.role
        reward = float(self._carry + env._cumulative_rewards[role])
        self._carry = 0.0
        terminated = bool(env.terminations[role])
        truncated = bool(env.truncations[role])
        if self.render_mode == "human":
            print(env.board(self.role))
        return env._vector(role).copy(), reward, terminated, truncated, self._info()

    def action_masks(self) -> np.ndarray:
        """The learner's legal-action mask (bool); all False once the episode is over."""
        return self.env._mask(self.role).astype(bool)

    def render(self):
        """The board as the learner may see it (``raw_env.board``: its own return only, and
        none of what its observation hides until the match ends), as text (``"ansi"``), or
        printed (``"human"``; it is also printed during play)."""
        if self.render_mode is None:
            return self.env.render()  # (Gymnasium's warning)
        text = self.env.board(self.role)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ helpers
    def _advance(self) -> None:
        """Let the opponents act until it is the learner's turn or the match is over."""
        env, role, actors = self.env, self.role, self._actors
        while not env._ended and env.agent_selection != role:
            agent = env.agent_selection
            action = actors[agent](env._vector(agent).copy(), env._mask(agent).copy())
            env.step(action)
        self._over = env._ended

    def _info(self) -> dict[str, Any]:
        info = dict(self.env.infos[self.role])
        info["return"] = info[self._return_key]
        return info

    @property
    def referee(self):
        return self.env.referee

    def match_summary(self) -> dict[str, Any]:
        """The match so far in words (see ``raw_env.match_summary``)."""
        return self.env.match_summary()

    def role_observation(self):
        """The learner's pydantic observation (the text face)."""
        return self.env.role_observation(self.role)

    def decode_action(self, index: int):
        return self.env.decode_action(self.role, index)


__all__ = ["RoleEnv", "default_opponent"]
