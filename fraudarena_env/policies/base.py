"""What every policy shares: the ``Policy`` base class (one policy, either face), the uniform
``RandomPolicy``, and ``views``, the named views of a role's observation vector that policies read
instead of offsets.

Every policy takes an optional ``seed=`` and draws randomness only from its own generator.
"""

from __future__ import annotations

import numpy as np

from ..faces.encoding import Observer
from ..rules.catalog import ROLES


def split_tensor_obs(observation, action_mask=None):
    """Accept ``(vector, mask)`` or the env's ``{"observation", "action_mask"}`` dict."""
    if isinstance(observation, dict) and "observation" in observation:
        return np.asarray(observation["observation"]), np.asarray(observation["action_mask"])
    return np.asarray(observation), None if action_mask is None else np.asarray(action_mask)


def is_tensor_obs(observation) -> bool:
    return isinstance(observation, (np.ndarray, dict))


class Policy:
    """Base class: dispatches on the face of the observation it is given."""

    role: str = ""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self.masked_picks = 0  # choices the mask refused, replaced by a safe action

    def legal_or(self, index: int, mask: np.ndarray, fallback: int) -> int:
        """``index`` when the mask allows it, else ``fallback`` (the role's pass), counted in
        ``masked_picks``: a scripted policy never acts illegally, even when match knobs differ
        from the task defaults it reasons with, and its tests can see that it had to
        fall back."""
        if mask[index]:
            return index
        self.masked_picks += 1
        return fallback

    @property
    def rng(self) -> np.random.Generator:
        """The policy's own generator, made on first use (most baselines never draw)."""
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self._rng = None

    def act(self, observation, action_mask=None):
        if is_tensor_obs(observation):
            vector, mask = split_tensor_obs(observation, action_mask)
            if mask is None:
                raise ValueError(f"{type(self).__name__}.act on the tensor face needs the "
                                 "action mask: pass act(vector, mask) or the env's obs dict")
            return int(self.act_tensor(vector, mask))
        return self.act_model(observation)

    __call__ = act

    def check_plays(self, role: str, what: str) -> None:
        """Raise ``ValueError`` unless this policy may play ``role`` (one of no particular role
        plays any): ``what`` names the seat, e.g. "the fraudster opponent"."""
        if self.role and self.role != role:  # it would read another role's vector
            raise ValueError(f"{type(self).__name__} plays {self.role}, not {role}: {what} "
                             f"must be a policy for {role}")

    @classmethod
    def has_tensor_face(cls) -> bool:
        return cls.act_tensor is not Policy.act_tensor

    def act_tensor(self, vector: np.ndarray, mask: np.ndarray) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no tensor face")

    def act_model(self, observation):
        raise NotImplementedError(f"{type(self).__name__} has no text face")

    def shared_player(self):
        """For the match it plays now: an object whose ``act_many(vectors, masks)`` gives, for
        many matches at once, the moves this policy would make in each (a frozen network that
        keeps no state between moves), or None. ``PerEnvPolicies`` asks the envs whose players
        share one such object in a single call."""
        return None


class RandomPolicy(Policy):
    """Uniform over the legal actions (tensor face)."""

    def __init__(self, role: str = "", seed: int | None = None):
        super().__init__(seed)
        self.role = role

    def act_tensor(self, vector, mask):
        legal = np.flatnonzero(mask)
        if len(legal) == 0:
            raise ValueError("no legal action in the mask: is it this role's turn?")
        return int(legal[self.rng.integers(len(legal))])

class BatchPolicy:
    """One role's player in ``num_envs`` matches at once, on the tensor face: each call decides
    for any ``k`` of them.

    * ``reset_envs(envs, seeds)``: matches ``envs`` (k,) start anew; ``seeds`` (one per env, or
      None) reseed their players as ``Policy.reset(seed=...)`` would;
    * ``act_batch(envs, vectors, masks)``: the action in each of ``envs`` (k,), given that role's
      observation vectors (k, D) and action masks (k, A) there: (k,) int64.

    A player that keeps state between decisions must see each match's decisions in order.
    ``PerEnvPolicies`` puts any per-env players behind it.
    """

    role: str = ""

    def reset_envs(self, envs: np.ndarray, seeds=None) -> None:
        raise NotImplementedError

    def act_batch(self, envs: np.ndarray, vectors: np.ndarray, masks: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PerEnvPolicies(BatchPolicy):
    """A ``BatchPolicy`` over one player per env, asked one env at a time: ``actors[i]`` is
    ``act(vector, mask) -> int`` (a ``Policy``, or any callable) and ``players[i]`` the object
    ``reset_envs`` reseeds (``actors[i]``'s ``Policy``, or None for none)."""

    def __init__(self, actors: list, players: list | None = None):
        self.actors = list(actors)
        self.players = list(players) if players is not None else [
            a if isinstance(a, Policy) else None for a in self.actors]

    def reset_envs(self, envs, seeds=None) -> None:
        envs = np.asarray(envs).tolist()
        for i, seed in zip(envs, [None] * len(envs) if seeds is None else seeds):
            if self.players[i] is not None:
                self.players[i].reset(seed=seed)

    def act_batch(self, envs, vectors, masks) -> np.ndarray:
        """Each env's player acts for its match; the envs whose players share a frozen network
        for their current match (``Policy.shared_player``: a checkpoint, a pool's member) are
        asked in one call per network."""
        actors, players = self.actors, self.players
        out = np.empty(len(envs), np.int64)
        shared: dict[int, tuple] = {}
        for k, i in enumerate(np.asarray(envs).tolist()):
            player = players[i].shared_player() if isinstance(players[i], Policy) else None
            if player is None:
                out[k] = actors[i](vectors[k], masks[k])
            else:
                shared.setdefault(id(player), (player, []))[1].append(k)
        for player, ks in shared.values():
            out[ks] = player.act_many(vectors[ks], masks[ks])
        return out


# Each view's (start, stop, shape) in a role's vector, from the observer's layout.
_SLICES = {role: [(name, o, o + int(np.prod(shape)), shape) for name, o, shape in
                  Observer(role).layout] for role in ROLES}
SPANS = {role: {name: (a, b, shape) for name, a, b, shape in sl} for role, sl in _SLICES.items()}


def views(role: str, vector: np.ndarray, names=None) -> dict[str, np.ndarray]:
    """Named views of a role's observation vector (no copy): all of them, or ``names``."""
    if names is None:
        return {name: vector[a:b].reshape(shape) for name, a, b, shape in _SLICES[role]}
    by_name = SPANS[role]
    return {name: vector[by_name[name][0]:by_name[name][1]].reshape(by_name[name][2])
            for name in names}
