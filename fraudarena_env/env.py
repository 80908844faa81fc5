"""FraudArena as a PettingZoo AEC environment.

``raw_env`` wraps one :class:`~fraudarena_env.referee.Referee` (the rules) and the tensor face of
:mod:`fraudarena_env.faces.encoding` (action catalogue, legal-action masks, observation vectors).
It adds only the AEC bookkeeping, so it stays thin and fast:

* spaces are built once; ``observe`` fills the role's preallocated vector and mask at most once per
  step and hands out copies;
* ``step`` takes an action index (python or numpy integer), or the acting role's pydantic action
  model, or a dict that validates to it (the text face: free text such as ``ad_copy`` or a
  ``rationale`` is honoured); anything else (a live agent's ``None``, a string, a float, a
  framework's tensor) raises ``IllegalActionError`` in every mode and changes nothing;
* an illegal action raises :class:`~fraudarena_env.rules.errors.IllegalActionError` and leaves the
  match unchanged, so the caller can retry; with ``illegal_action="penalize"`` the referee charges
  a small negative reward instead and the action is used up; with ``illegal_action="terminate"``
  the match ends at once, the offender is charged ``illegal_reward`` (default ``-1.0``) and the
  others get nothing for that step, as PettingZoo's ``TerminateIllegalWrapper`` does (every agent
  is terminated; ``end_reason`` is ``illegal_action``; no ending rewards are paid and there is no
  grade); the referee ends the match and charges the offender (``end_on_illegal``), so its
  ``RefereeState`` and the text face show the match done with the totals ``infos`` report;
* the match ends for all three agents at once, on the auditor's report; a safety bound
  (``max_cycles``, see below) truncates all three at once;
* ``render_mode="human"`` prints the board after ``reset`` and after every step, as PettingZoo's and
  Gymnasium's envs render during play; ``"ansi"`` returns it from ``render()``.

Infos. Every agent's ``infos[agent]`` is its own dict (changing one leaves the others alone), has
the same keys on every step, from ``reset`` to the last dead step, and every value is a number,
so libraries that turn infos into tensors or store them in replay buffers (TorchRL, Tianshou,
RLlib) can:

================== ======= ===========================================================
key                type    meaning
================== ======= ===========================================================
``phase``          int     index into ``PHASES`` (fraudster_turn, investigator_turn,
                           audit_phase, done)
``round``          int     the current round, from 1
``end_reason``     int     ``-1`` while play goes on, then why it ended: an index into
                           ``END_REASONS`` (set from the audit phase on, or on truncation)
``has_grader``     bool    True once play has ended and the grader has scored it (from the
                           audit phase on; a truncation during play has no grade)
``grader_score``   float   the grader's score in [0, 1]; ``0.0`` while ``has_grader`` is False
``return_<role>``  float   that role's match total so far (one key per role; in terminate
                           mode it includes the ``illegal_reward`` charged); while the
                           match runs an agent's info shows only its own, the others read
                           ``0.0`` (sealed: the investigator's total moves by the hidden
                           labels of the ads it rules on), and every total once it ends
================== ======= ===========================================================

The same facts in words (phase and end reason by name, the grader's terms) come from
``env.unwrapped.match_summary()``; the board is ``render()``.

Cycles. ``max_cycles`` (default 1000) counts cycles, as PettingZoo's envs do: one cycle is one
step of every live agent, here three agent steps. Turns in FraudArena are not round robin (the
fraudster and the investigator take several actions per turn, the auditor acts only after play),
so the bound is applied to the count of agent steps: after ``3 * max_cycles`` live steps every
agent is truncated. Random play ends within about 100 agent steps on every task; the bound only
stops a runaway loop, e.g. unmasked play with ``illegal_action="penalize"``.

Reset options. ``reset(seed, options={...})`` accepts ``task_id`` and the match knobs
(``max_rounds``, ``max_proposals``, ``max_fraudster_actions_per_turn``,
``max_investigator_actions_per_turn``, ``allowed_categories``); they override the constructor's
values for that match only (a knob given as None plays the task's default, as in the
constructor); a refused option changes nothing (the match under way plays on, and
later unseeded resets draw the same seeds). Any other key is a ``ValueError``, except the literal key
``"options"``, which is ignored: PettingZoo's ``api_test`` calls ``reset(seed=0,
options={"options": 1})`` to check that ``reset`` takes an ``options`` argument.

Seeding. ``reset(seed=s)`` plays match ``s`` (the same match as ``Referee.reset_match(seed=s)``)
and reseeds the env's generator; a later ``reset()`` without a seed draws the next match seed from
that generator, so a seeded sequence of resets is reproducible.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle
from pettingzoo import AECEnv
from pydantic import BaseModel

from .faces.encoding import (
    N_ACTIONS,
    OBS_BOUND,
    OPS,
    Observer,
    apply_index,
    model_to_op,
    op_to_index,
    op_to_model,
)
from .faces.state import STATE_SIZE, state_feature_names, state_vector
from .models import ACTION_MODELS, parse_action
from .referee import Referee
from .rules.catalog import (
    AD_IDS,
    CATEGORIES,
    LABELS,
    MATCH_KNOBS,
    PHASES,
    ROLES,
    TARGETS,
    TASKS,
    VERDICTS,
)
from .rules.copies import KeepsViews
from .rules.errors import IllegalActionError
from .rules.referee import match_settings
from .rules.state import END_REASONS as RULES_END_REASONS

AGENTS = ROLES  # the catalogue's roles, in turn order
_ACTION_CLASSES = tuple(ACTION_MODELS.values())  # what a text action may be, but a dict
# Free-text fields of each action model: a model carrying any of them has no action index.
FREE_TEXT = {
    "fraudster": ("ad_copy", "landing_page_blurb", "targeting_summary", "new_ad_copy",
                  "new_landing_page_blurb", "rationale"),
    "investigator": ("rationale", "link_reason"),
    "auditor": ("note", "audit_report"),
}
# One letter per evidence source, in TARGETS order, for the rendered "pulled" column.
SOURCE_LETTERS = "HLPTCK"
SOURCE_LEGEND = " ".join(f"{c}={t}" for c, t in zip(SOURCE_LETTERS, TARGETS))
RESET_OPTION_KEYS = frozenset(MATCH_KNOBS) | {"task_id"}
IGNORED_OPTION_KEYS = frozenset({"options"})  # pettingzoo api_test's probe key
DEFAULT_MAX_CYCLES = 1000
# Why the match ended, by the index that ``infos[agent]["end_reason"]`` carries: the ends of play,
# then the env's safety truncation, then an illegal action in terminate mode (the referee's
# ``end_on_illegal``). The indices are public: a new reason goes at the end.
END_REASONS: tuple[str, ...] = ("commit_final", "all_decided", "max_rounds", "budget_exhausted",
                                "max_cycles", "illegal_action")
assert set(RULES_END_REASONS) <= set(END_REASONS)
ILLEGAL_ACTION_MODES = ("raise", "penalize", "terminate")
DEFAULT_ILLEGAL_REWARD = -1.0  # terminate mode: PettingZoo's classic envs charge the loss, -1
END_REASON_INDEX = {r: i for i, r in enumerate(END_REASONS)}
PHASE_INDEX = {p: i for i, p in enumerate(PHASES)}
RETURN_KEYS = tuple(f"return_{a}" for a in AGENTS)
# what an agent's info shows of the other roles' returns while the match runs
_SEALED_KEYS = {a: tuple(f"return_{b}" for b in AGENTS if b != a) for a in AGENTS}
INFO_KEYS: tuple[str, ...] = ("phase", "round", "end_reason", "has_grader", "grader_score",
                              *RETURN_KEYS)


def _known(agent: str) -> str:
    """``agent``, when it is one of ``AGENTS``; else a ValueError that lists them."""
    if not isinstance(agent, str) or agent not in AGENTS:
        raise ValueError(_unknown_agent(agent))
    return agent


def _unknown_agent(agent) -> str:
    return f"unknown agent {agent!r}; agents are {list(AGENTS)}"


class raw_env(KeepsViews, AECEnv, EzPickle):
    """The bare FraudArena AEC env. Use :func:`fraudarena_env.fraudarena_v0.env` for the wrapped
    one. A pickled or deep-copied env keeps its match and plays on exactly as the original would
    (``rules.copies.KeepsViews``; ``EzPickle`` alone rebuilt a fresh env from the constructor's
    arguments)."""

    metadata = {
        "name": "fraudarena_v0",
        "is_parallelizable": False,
        "render_modes": ["ansi", "human"],
        "render_fps": 1,
    }

    def __init__(self, task_id: str = "task_1", render_mode: str | None = None,
                 illegal_action: str = "raise", max_cycles: int = DEFAULT_MAX_CYCLES,
                 illegal_reward: float = DEFAULT_ILLEGAL_REWARD,
                 max_rounds: int | None = None, max_proposals: int | None = None,
                 max_fraudster_actions_per_turn: int | None = None,
                 max_investigator_actions_per_turn: int | None = None,
                 allowed_categories: list[str] | tuple[str, ...] | None = None):
        EzPickle.__init__(self, task_id=task_id, render_mode=render_mode,
                          illegal_action=illegal_action, max_cycles=max_cycles,
                          illegal_reward=illegal_reward, max_rounds=max_rounds,
                          max_proposals=max_proposals,
                          max_fraudster_actions_per_turn=max_fraudster_actions_per_turn,
                          max_investigator_actions_per_turn=max_investigator_actions_per_turn,
                          allowed_categories=allowed_categories)
        super().__init__()
        if task_id not in TASKS:
            raise ValueError(f"unknown task_id {task_id!r}; choose one of {list(TASKS)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of "
                             f"{self.metadata['render_modes']}, not {render_mode!r}")
        if illegal_action not in ILLEGAL_ACTION_MODES:
            raise ValueError(f"illegal_action must be one of {ILLEGAL_ACTION_MODES}, not "
                             f"{illegal_action!r}")
        if not isinstance(max_cycles, (int, np.integer)) or isinstance(max_cycles, bool) \
                or max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive integer, got {max_cycles!r}")
        self.task_id = task_id
        self.render_mode = render_mode
        self.illegal_action = illegal_action
        if isinstance(illegal_reward, bool) or not isinstance(illegal_reward, numbers.Real) or \
                not math.isfinite(illegal_reward):
            raise ValueError(f"illegal_reward must be a finite number, got {illegal_reward!r}")
        self.illegal_reward = float(illegal_reward)
        self.max_cycles = int(max_cycles)
        self._max_steps = self.max_cycles * len(AGENTS)  # one cycle: one step of every agent
        knobs = {"max_rounds": max_rounds, "max_proposals": max_proposals,
                 "max_fraudster_actions_per_turn": max_fraudster_actions_per_turn,
                 "max_investigator_actions_per_turn": max_investigator_actions_per_turn,
                 "allowed_categories": allowed_categories}
        self.knobs = {k: v for k, v in knobs.items() if v is not None}
        match_settings(0, task_id, self.knobs)  # a bad knob is named now, not at reset

        self.possible_agents = list(AGENTS)
        self.agents = []
        # In terminate mode the referee raises, and the env ends the match through the referee
        # (``end_on_illegal``), which charges the offender in its totals.
        # It records the ops played, not events: the tensor path builds no text, and the text
        # face replays the match into events the first time it is asked (faces.narration).
        self._ref = Referee(illegal_action="raise" if illegal_action == "terminate"
                            else illegal_action, record="ops")
        self._ops = OPS
        self._observers = {a: Observer(a) for a in AGENTS}
        self._masks = {a: np.zeros(N_ACTIONS[a], np.int8) for a in AGENTS}
        self._zero_masks = {a: np.zeros(N_ACTIONS[a], np.int8) for a in AGENTS}
        self._obs_version = dict.fromkeys(AGENTS, -1)
        self._vectors = {a: obs.tensor for a, obs in self._observers.items()}
        self._mask_version = dict.fromkeys(AGENTS, -1)
        self._version = 0
        self.observation_spaces = {
            a: spaces.Dict({
                "observation": spaces.Box(-OBS_BOUND, OBS_BOUND, (self._observers[a].size,),
                                          np.float32),
                "action_mask": spaces.Box(0, 1, (N_ACTIONS[a],), np.int8),
            }) for a in AGENTS}
        self.action_spaces = {a: spaces.Discrete(N_ACTIONS[a]) for a in AGENTS}
        self._state_space: spaces.Box | None = None  # made when first asked (``state_space``)
        self._np_random: np.random.Generator | None = None
        self._num_steps = 0
        self._ended = True
        self._truncated_by: str | None = None
        self._illegal_error: IllegalActionError | None = None  # terminate mode: what ended it

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Dict:
        try:
            return self.observation_spaces[agent]
        except (KeyError, TypeError):
            raise ValueError(_unknown_agent(agent)) from None

    def action_space(self, agent: str) -> spaces.Discrete:
        try:
            return self.action_spaces[agent]
        except (KeyError, TypeError):
            raise ValueError(_unknown_agent(agent)) from None

    # ------------------------------------------------------------------ reset
    def match_config(self, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """``(task_id, knobs)`` that ``reset(options=options)`` plays: the constructor's, with
        the options over them. A bad option is a ValueError naming it, raised before anything
        changes (the generator that draws an unseeded reset's match seed included)."""
        task_id, knobs = self.task_id, self.knobs
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(f"options must be a dict of reset options (known: "
                             f"{sorted(RESET_OPTION_KEYS)}), got {type(options).__name__}")
        if options:
            unknown = set(options) - RESET_OPTION_KEYS - IGNORED_OPTION_KEYS
            if unknown:
                raise ValueError(f"unknown reset option(s) {sorted(unknown)}; known: "
                                 f"{sorted(RESET_OPTION_KEYS)}")
            task_id = task_id if options.get("task_id") is None else options["task_id"]
            knobs = dict(knobs)
            knobs.update((k, v) for k, v in options.items() if k in MATCH_KNOBS)
            match_settings(0, task_id, knobs)
        return task_id, knobs

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        task_id, knobs = self.match_config(options)
        if seed is not None:
            match_seed = seed
        elif self._np_random is not None:
            match_seed = int(self._np_random.integers(0, 2**63 - 1))
        else:
            match_seed = int(np.random.SeedSequence().entropy % (2**63))
        ref = self._ref
        ref.reset_match(seed=match_seed, task_id=task_id, **knobs)  # validates seed and knobs
        if seed is not None or self._np_random is None:
            self._np_random = np.random.default_rng(ref.seed)

        self.agents = list(AGENTS)
        self.rewards = dict.fromkeys(AGENTS, 0.0)
        self._cumulative_rewards = dict.fromkeys(AGENTS, 0.0)
        self.terminations = dict.fromkeys(AGENTS, False)
        self.truncations = dict.fromkeys(AGENTS, False)
        self._truncated_by = None
        self._illegal_error = None
        self._ended = False
        self._set_infos()
        self.agent_selection = ref.current_role
        self._num_steps = 0
        self._version += 1
        if self.render_mode == "human":
            self.render()

    # ------------------------------------------------------------------ observe
    def _vector(self, agent: str) -> np.ndarray:
        """The agent's observation vector, filled at most once per step (internal buffer)."""
        if self._obs_version[agent] != self._version:
            self._needs_match("observe()")
            self._vectors[agent] = self._observers[agent].fill(self._ref)
            self._obs_version[agent] = self._version
        return self._vectors[agent]

    def _mask(self, agent: str) -> np.ndarray:
        """The agent's legal-action mask (internal buffer): all zeros unless it is acting."""
        if self._ended or agent != self.agent_selection:
            return self._zero_masks[agent]
        if self._mask_version[agent] != self._version:
            self._masks[agent] = self._observers[agent].mask(self._ref)
            self._mask_version[agent] = self._version
        return self._masks[agent]

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        try:
            return {"observation": self._vector(agent).copy(),
                    "action_mask": self._mask(agent).copy()}
        except (KeyError, TypeError):
            _known(agent)  # (an unknown agent is named; any other error is raised as it was)
            raise

    def action_mask(self, agent: str) -> np.ndarray:
        """A copy of the agent's current legal-action mask (int8)."""
        return self._mask(agent).copy()

    @property
    def state_space(self) -> spaces.Box:
        """The space of ``state()``, the global state for centralised training
        (``faces/state.py``). Made when first asked: its bounds are 6,762 floats each, two
        fifths of what an env held before, and most users never ask."""
        if self._state_space is None:
            self._state_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (STATE_SIZE,), np.float32)
        return self._state_space

    def state(self) -> np.ndarray:
        """The global state, for a centralised critic in training (it holds what no player
        sees): every role's own vector, then each ad's true label, ring and severity
        (``faces/state.py``; ``state_feature_names()`` names every entry). A new array."""
        self._needs_match("state()")
        for agent in AGENTS:
            self._vector(agent)  # brings the role's observer up to date
        return state_vector({a: self._observers[a].tensor for a in AGENTS}, self._ref)

    @staticmethod
    def state_feature_names() -> list[str]:
        """One name per entry of ``state()``, in order."""
        return state_feature_names()

    # ------------------------------------------------------------------ step
    def step(self, action: Any) -> None:
        if not self.agents:
            raise RuntimeError("no match is under way (reset() was never called, or every agent "
                               "has stepped out of the last one): call reset() to start one")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:  # PettingZoo's own error here is a bare ValueError
                raise IllegalActionError(agent, action, (
                    f"the {agent} is {'terminated' if self.terminations[agent] else 'truncated'}"
                    ": its one step left is env.step(None); then reset() starts a new match"))
            self._was_dead_step(action)
            return
        if type(action) is int or isinstance(action, np.integer) or \
                (isinstance(action, int) and not isinstance(action, bool)):  # an IntEnum too
            index = int(action)
        elif isinstance(action, np.ndarray) and action.size == 1 and \
                np.issubdtype(action.dtype, np.integer):
            index = int(action.reshape(-1)[0])
        elif isinstance(action, (*_ACTION_CLASSES, dict)):  # a text action (any role's)
            index = None
        else:  # not an action on either face: raised in every mode, as a caller's mistake
            raise IllegalActionError(agent, action, self._not_an_action(agent, action))
        try:
            if index is None:
                self._ref.apply_model(agent, action)
            else:
                self._step_index_like(agent, action, index)
        except IllegalActionError as exc:
            if self.illegal_action != "terminate":
                raise
            self._terminate_illegal(agent, exc)
        else:
            self._after_apply(agent)
        if self.render_mode == "human":
            self.render()

    @staticmethod
    def _not_an_action(agent: str, action: Any) -> str:
        """Why ``action`` is no action of either face (the error's reason)."""
        if action is None:
            return "None is only for the step of an agent that is terminated or truncated"
        if isinstance(action, BaseModel):
            return (f"{type(action).__name__} is no action model (an action is an index, a "
                    f"{ACTION_MODELS[agent].__name__} or a dict)")
        return (f"expected an action index (int), a {ACTION_MODELS[agent].__name__} or a dict, "
                f"got {type(action).__name__}")

    def _step_index_like(self, agent: str, action: Any, i: int) -> None:
        n = N_ACTIONS[agent]
        if not 0 <= i < n:
            self._illegal(agent, action, f"index {i} is outside Discrete({n})")
            return
        if self._mask_version[agent] == self._version and self._masks[agent][i]:
            # the mask handed out for this very state offers it: legal (the observer's mask is
            # the rules' legal_mask, which the tests check at every step)
            self._ref.carry_out(agent, self._ops[agent][i])
            return
        apply_index(self._ref, agent, i)

    def _illegal(self, agent: str, action: Any, reason: str) -> None:
        """An action the referee never saw as an op: raise, or (penalize mode) charge it."""
        if self.illegal_action != "penalize":
            raise IllegalActionError(agent, action, reason)
        self._ref.penalize(agent, action, reason)

    def _terminate_illegal(self, agent: str, error: IllegalActionError) -> None:
        """Terminate mode: the referee ends the match, charging ``illegal_reward`` to the
        offender only (what it had been paid before is kept; the others' rewards not yet seen
        stay owed to them)."""
        self._illegal_error = error
        charge = self._ref.end_on_illegal(agent, error.action, error.reason, self.illegal_reward)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self.rewards[agent] = charge
        self._cumulative_rewards[agent] = 0.0
        self._accumulate_rewards()
        self._num_steps += 1
        self._version += 1
        self._ended = True
        self.terminations = dict.fromkeys(self.agents, True)
        self._set_infos()
        self._deads_step_first()

    def _after_apply(self, agent: str) -> None:
        ref = self._ref
        sr = ref.step_rewards
        rewards, cum = self.rewards, self._cumulative_rewards
        cum[agent] = 0.0
        r = float(sr[0])
        rewards["fraudster"] = r
        cum["fraudster"] += r
        r = float(sr[1])
        rewards["investigator"] = r
        cum["investigator"] += r
        r = float(sr[2])
        rewards["auditor"] = r
        cum["auditor"] += r
        self._num_steps += 1
        self._version += 1
        if ref.phase == "done":
            self._ended = True
            self.terminations = dict.fromkeys(self.agents, True)
            self._set_infos()
            self._deads_step_first()
            return
        if self._num_steps >= self._max_steps:
            self._ended = True
            self._truncated_by = "max_cycles"
            self.truncations = dict.fromkeys(self.agents, True)
            self._set_infos()
            self.agent_selection = ref.current_role
            self._deads_step_first()
            return
        self._set_infos()
        self.agent_selection = ref.current_role

    def _set_infos(self) -> None:
        """A fresh info dict for every live agent: while the match runs, each shows its own
        return and 0.0 for the others' (sealed, as the server's state: the investigator's total
        moves by the hidden labels of the ads it rules on); once it has ended, every return."""
        info = self._info()
        infos = {a: info.copy() for a in self.agents}
        if not self._ended:
            for a, d in infos.items():  # (a copy and two writes: as fast as a plain copy)
                for key in _SEALED_KEYS[a]:
                    d[key] = 0.0
        self.infos = infos

    def _end_reason(self) -> str | None:
        return self._truncated_by or self._ref.end_reason

    def _info(self) -> dict[str, int | float | bool]:
        """One agent's info: the keys of ``INFO_KEYS``, numbers only."""
        ref = self._ref
        t = self._ref.totals
        reason = self._end_reason()
        graded = ref.grader_score is not None
        return {"phase": PHASE_INDEX[ref.phase], "round": ref.round_number,
                "end_reason": -1 if reason is None else END_REASON_INDEX[reason],
                "has_grader": graded,
                "grader_score": float(ref.grader_score) if graded else 0.0,
                "return_fraudster": float(t[0]), "return_investigator": float(t[1]),
                "return_auditor": float(t[2])}

    def match_summary(self) -> dict[str, Any]:
        """The match so far in words, for logs and people (infos carry the same as numbers):
        ``task_id``, ``match_id``, ``phase``, ``round``, ``end_reason`` (a name, or None while
        play goes on), ``grader_score`` and ``grader_terms`` (None until graded), ``returns``
        (role -> match total) and ``illegal_action`` (terminate mode: the error that ended the
        match, in words; otherwise None)."""
        ref = self._ref
        self._needs_match("match_summary()")
        end_reason = self._end_reason()
        return {"task_id": ref.task.task_id, "match_id": ref.match_id, "phase": ref.phase,
                "round": ref.round_number, "end_reason": end_reason,
                "grader_score": ref.grader_score,
                "grader_terms": dict(ref.grader_terms) if ref.grader_score is not None
                else None,
                "returns": dict(zip(AGENTS, (float(t) for t in self._ref.totals))),
                "illegal_action": None if self._illegal_error is None
                else str(self._illegal_error)}

    # ------------------------------------------------------------------ codec and views
    def decode_action(self, agent: str, index: int) -> BaseModel:
        """The pydantic action model that action ``index`` of ``agent`` stands for."""
        ops = self._ops[_known(agent)]
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or \
                not 0 <= int(index) < len(ops):
            raise ValueError(f"{agent} action index must be an integer in [0, {len(ops)}), "
                             f"got {index!r}")
        return op_to_model(agent, ops[int(index)])

    def encode_action(self, agent: str, model: BaseModel | dict) -> int | None:
        """The action index standing for ``model``, or None when the model carries free text
        (copy, blurbs, rationale, notes, a report) or a target that no index stands for.
        ``confidence`` and ``severity`` are snapped to the catalogue's values. A fraudster
        ``modify_pending_ad`` by ``slot_index`` is resolved against the current match."""
        model = parse_action(agent, model)
        if any(getattr(model, f) is not None for f in FREE_TEXT[agent]):
            return None
        if agent == "fraudster" and model.action_type == "modify_pending_ad" and \
                model.ad_id is None:
            slots = self._ref.proposal_slots if self._ref.task is not None else []
            if model.slot_index >= len(slots):
                return None
            model = model.model_copy(update={"ad_id": AD_IDS[slots[model.slot_index]],
                                             "slot_index": None})
        try:
            op = model_to_op(agent, model)
        except IllegalActionError:  # an ad id or category the catalogue does not know
            return None
        return op_to_index(agent, op)

    def role_observation(self, agent: str) -> BaseModel:
        """The referee's pydantic observation for ``agent`` (the text face)."""
        builder = getattr(self._ref, f"build_{_known(agent)}_observation")
        self._needs_match("role_observation()")
        return builder()

    def _needs_match(self, call: str) -> None:
        """A RuntimeError saying to call reset() first, when no match has been reset yet."""
        if self._ref.task is None:
            raise RuntimeError(f"no match yet: call reset() before {call}")

    def observation_layout(self, agent: str, as_text: bool = False):
        """(name, offset, shape) of every named block of ``agent``'s observation vector; with
        ``as_text=True`` a printable table."""
        layout = list(self._observers[_known(agent)].layout)
        if not as_text:
            return layout
        lines = [f"{agent} observation: {self._observers[agent].size} float32 entries in "
                 f"[{-OBS_BOUND}, {OBS_BOUND}]", f"{'offset':>6}  {'size':>5}  name  shape"]
        for name, offset, shape in layout:
            lines.append(f"{offset:>6}  {int(np.prod(shape)):>5}  {name}  {shape}")
        return "\n".join(lines)

    def observation_feature_names(self, agent: str) -> list[str]:
        return self._observers[agent].feature_names()

    @property
    def referee(self) -> Referee:
        return self._ref

    @property
    def match_over(self) -> bool:
        """True once the match has ended (terminated or truncated) and until the next reset."""
        return self._ended

    # ------------------------------------------------------------------ render
    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("You are calling render method without specifying any render "
                                  "mode; pass render_mode='ansi' or 'human'.")
            return None
        text = self._render_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def _render_text(self, role: str | None = None) -> str:
        """The board: the whole match (a spectator's view); given ``role``, only what that role
        may see while the match runs (``board``)."""
        ref = self._ref
        if ref.task is None:
            return "FraudArena: not reset yet"
        sealed = role is not None and not self._ended
        t = self._ref.totals
        returns = [f"{a} {t[i]:+.2f}" for i, a in enumerate(AGENTS) if not sealed or a == role]
        lines = [
            f"FraudArena {ref.task.task_id} | {ref.phase} | round {ref.round_number}/"
            f"{ref.max_rounds} | budget {ref.budget}/{ref.task.action_budget} | proposals "
            f"{ref.proposals_used}/{ref.max_proposals} | step {ref.step_count}",
            "returns: " + "  ".join(returns),
        ]
        # the truth, and which ads are proposals: for a role, what its own view shows (the
        # fraudster knows its own ads; the auditor reads the record once play is over)
        over = ref.phase in ("audit_phase", "done") and (not sealed or role == "auditor")
        marked = not sealed or role == "fraudster" or over
        # the links and the audit, as the sealed state shows them: the links to the
        # investigator, the record to the auditor once play is over, the audit to the auditor
        links = not sealed or role == "investigator" or over
        audit = not sealed or role == "auditor"
        shown = ref.present.copy()
        if sealed and role == "investigator":
            shown[ref.unseen_by_investigator()] = False
        if sealed and role == "auditor" and not over:  # it sees nothing before play is over
            shown[:] = False
        head = f"{'ad':<7} {'category':<29} {'status':<9} {'pulled':<6}  verdict"
        lines.append(head + ("          truth" if over else ""))
        for s in np.flatnonzero(shown):
            cat = CATEGORIES[ref.category_of(s)].name
            mark = "*" if marked and ref.is_proposal[s] else " "
            pulled = "".join(c if ref.pulled[s, k] else "." for k, c in enumerate(SOURCE_LETTERS))
            v = int(ref.verdict[s])
            if v < 0:
                verdict = ""
            elif ref.manual[s]:
                verdict = f"{VERDICTS[v]} {float(ref.confidence[s]):.2f}"
            else:
                verdict = f"{VERDICTS[v]} (auto)"
            line = f"{AD_IDS[s]:<7} {cat + mark:<29} {ref.status_of(s):<9} {pulled:<6}  " \
                   f"{verdict:<16}"
            if over:
                line += f" {LABELS[ref.label_of(s)]}"
            lines.append(line.rstrip())
        if ref.links and links:
            lines.append("links: " + ", ".join(f"{AD_IDS[a]}-{AD_IDS[b]}" for a, b in ref.links))
        if ref.auditor_flags and audit:
            lines.append(f"audit flags: {len(ref.auditor_flags)}")
        if self._illegal_error is not None:
            lines.append(f"match ended on an illegal action: {self._illegal_error}")
        elif ref.end_reason is not None:
            g = ref.grader_score
            lines.append(f"play ended: {ref.end_reason}" +
                         (f" | grader {g:.3f}" if g is not None and audit else ""))
        elif self._truncated_by is not None:
            lines.append(f"play truncated: {self._truncated_by} ({self.max_cycles} cycles)")
        lines.append(f"({'* fraudster proposal; ' if marked else ''}pulled: {SOURCE_LEGEND})")
        return "\n".join(lines)

    def board(self, role: str) -> str:
        """The board as ``role`` may see it while the match runs, as its sealed state shows the
        match: its own return only; the investigator without the ads its observation hides and
        without telling proposals apart; the links to the investigator; the auditor nothing
        until play is over, then the record and the truth; the audit and the grade to the
        auditor; every fact once the match has ended.
        ``render()`` is a spectator's board; this is the one to show a player (``RoleEnv``
        renders it)."""
        _known(role)
        return self._render_text(role)

    def close(self) -> None:
        pass


__all__ = ["raw_env", "AGENTS", "ACTION_MODELS", "END_REASONS", "ILLEGAL_ACTION_MODES",
           "INFO_KEYS"]
