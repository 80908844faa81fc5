"""A slot-structured investigator policy for SB3's MaskablePPO.

A flat MLP over the investigator's 2,638 floats gives every one of the 32 ad slots its own
weights, so it must learn the same lesson 32 times. This policy reads the vector through the
env's named layout (``Observer("investigator").layout``) instead:

* every slot's row (presence, status, arrival round, category, surface, copy features, pulled
  sources and their evidence, sources left, links, ring collisions) goes through one shared
  encoder, together with the match's globals (phase, the task's traits, round, budget, ...);
* slots see each other through a masked mean over the present slots, fed back into every slot;
* per-slot action scores come from per-slot embeddings: 6 investigate logits and 9 verdict
  logits (3 verdicts x 3 confidence buckets) per slot, in the action catalogue's order; a link
  between two slots is scored from both embeddings and the pair's shared-signal feature;
  ``end_turn`` and the value come from a global embedding.

Nothing in it depends on the number of slots beyond the layout it reads, so the same weights
serve every task. Use it as ``MaskablePPO(SlotInvestigatorPolicy, env)`` on a
``RoleEnv("investigator", ...)``.

It sees the task through its public configuration, not its name: the observation's task one-hot
becomes the task's traits (``TASK_TRAITS``: does it have fraud rings, does it have gray-area
ads). A task it never trained on plays like the trained task that shares its traits
(task_3_unseen like task_3), instead of switching on an input whose weights never learned.
Checkpoints saved when the network read the one-hot still load (``load_state_dict`` folds the
one-hot's weights into the traits' exactly, for the tasks they trained on).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
import torch as th
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.nn import functional as F

from .faces.encoding import I_END, I_INVESTIGATE, I_LINK, I_VERDICT, PAIRS, Observer
from .rules.catalog import MAX_SLOTS, TASK_IDS, TASKS

S = MAX_SLOTS
_LAYOUT = {name: (offset, shape) for name, offset, shape in Observer("investigator").layout}
GLOBALS = ("phase", "task", "round", "rounds_remaining", "actions_left_this_turn", "budget",
           "queue_may_grow", "pending_count")
# What the policy knows of a task (rows in TASK_IDS order): its traits from the catalogue.
TASK_TRAIT_NAMES = ("rings", "gray_area")
TASK_TRAITS = np.array([[TASKS[t].n_rings > 0, TASKS[t].n_escalate > 0] for t in TASK_IDS],
                       dtype=np.float32)
_TASK_TRAITS = th.as_tensor(TASK_TRAITS)
SLOT_BLOCKS = ("present", "status", "arrived_round", "category", "surface", "lexical", "pulled",
               "evidence", "pulls_left", "links", "collisions")


def _span(name: str) -> tuple[int, int, tuple[int, ...]]:
    offset, shape = _LAYOUT[name]
    return offset, offset + int(np.prod(shape)), shape


_TASK_AT = sum(int(np.prod(_LAYOUT[n][1])) for n in GLOBALS[:GLOBALS.index("task")])
N_GLOBAL = sum(int(np.prod(_LAYOUT[n][1])) for n in GLOBALS) - len(TASK_IDS) + len(
    TASK_TRAIT_NAMES)
N_SLOT = sum(int(np.prod(_LAYOUT[n][1][1:])) for n in SLOT_BLOCKS)
N_PAIRS = len(PAIRS)


def split_observation(obs: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """(globals (B, G), slots (B, S, F), present (B, S), pair_shared (B, P)) from a batch of
    investigator vectors, by the layout's names: each block gathered in one indexing."""
    before, task, after = _GLOBAL_COLUMNS
    g = th.cat([obs.index_select(1, before), obs.index_select(1, task) @ _TASK_TRAITS,
                obs.index_select(1, after)], dim=1)
    slots = obs.index_select(1, _SLOT_COLUMNS).reshape(obs.shape[0], S, N_SLOT)
    return g, slots, obs[:, slice(*_span("present")[:2])], obs[:, slice(*_span(
        "pair_shared_signals")[:2])]


def _columns(names) -> th.Tensor:
    return th.as_tensor(np.concatenate([np.arange(*_span(n)[:2]) for n in names]))


def _slot_columns() -> th.Tensor:
    """The vector's column of every (slot, slot feature), slot by slot: (S * N_SLOT,)."""
    per_block = [np.arange(a, b).reshape(S, -1) for a, b, _ in map(_span, SLOT_BLOCKS)]
    return th.as_tensor(np.concatenate(per_block, axis=1).reshape(-1))


# the globals before the task block, the task block (read as traits), the globals after it
_GLOBAL_COLUMNS = (_columns(GLOBALS[:GLOBALS.index("task")]), _columns(["task"]),
                   _columns(GLOBALS[GLOBALS.index("task") + 1:]))
_SLOT_COLUMNS = _slot_columns()


class SlotFeatures(NamedTuple):
    """What the extractor gives the heads: the global embedding (B, dim), the slot embeddings
    (B, S, dim) and the pairs' shared-signal feature (B, P). Kept apart rather than flattened
    into one vector (``features_dim`` counts them all): the heads read them without slicing,
    and the backward pass fills no gradient of a whole flat vector per head. The policy's
    actor and critic networks are empty, so it reaches the heads as it is."""

    glob: th.Tensor
    slots: th.Tensor
    pair_shared: th.Tensor


class SlotExtractor(BaseFeaturesExtractor):
    """Encodes each slot with one shared network; returns the global embedding, the slot
    embeddings and the pair features (``SlotFeatures``), for ``SlotActionHead`` and the value
    head to read."""

    def __init__(self, observation_space, dim: int = 64):
        super().__init__(observation_space, features_dim=dim + S * dim + N_PAIRS)
        self.dim = dim
        self.embed = nn.Sequential(nn.Linear(N_SLOT + N_GLOBAL, dim), nn.ReLU(),
                                   nn.Linear(dim, dim), nn.ReLU())
        self.mix = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU())
        self.glob = nn.Sequential(nn.Linear(N_GLOBAL + dim, dim), nn.ReLU())

    def forward(self, obs: th.Tensor) -> th.Tensor:
        g, slots, present, pair_shared = split_observation(obs)
        # The first layers read [slot row, globals] and [slot embedding, pooled]: the parts
        # every slot shares go through their columns of the weights once per match, not once
        # per slot (the same function as the layers over the concatenation).
        h = self.embed[1:](_linear_split(self.embed[0], slots, g, N_SLOT))
        weight = present[:, :, None]
        pooled = (h * weight).sum(1) / weight.sum(1).clamp(min=1.0)
        h = self.mix[1:](_linear_split(self.mix[0], h, pooled, self.dim))
        glob = self.glob(th.cat([g, pooled], dim=1))
        return SlotFeatures(glob, h, pair_shared)


def _linear_split(layer: nn.Linear, rows: th.Tensor, shared: th.Tensor, width: int) -> th.Tensor:
    """``layer`` over ``[rows, shared broadcast to every row]``: rows (B, S, width), shared
    (B, in - width)."""
    w = layer.weight
    return F.linear(rows, w[:, :width]) + F.linear(shared, w[:, width:], layer.bias)[:, None, :]


class SlotActionHead(nn.Module):
    """Per-slot logits in the investigator's action order: investigate (slot x source), verdict
    (slot x verdict x confidence), link (pairs), end_turn."""

    def __init__(self, dim: int = 64, pair_dim: int = 16):
        super().__init__()
        self.dim = dim
        self.investigate = nn.Linear(dim, 6)
        self.verdict = nn.Linear(dim, 9)
        self.pair = nn.Linear(dim, pair_dim)
        self.link_gate = nn.Linear(dim, 1)
        self.pair_shared = nn.Parameter(th.tensor(2.0))
        self.pair_bias = nn.Parameter(th.tensor(-2.0))
        self.end = nn.Linear(dim, 1)
        self.register_buffer("pair_i", th.as_tensor(PAIRS[:, 0]), persistent=False)
        self.register_buffer("pair_j", th.as_tensor(PAIRS[:, 1]), persistent=False)
        self.register_buffer("pair_at", th.as_tensor(PAIRS[:, 0] * S + PAIRS[:, 1]),
                             persistent=False)
        for layer in (self.investigate, self.verdict, self.end, self.link_gate):
            nn.init.orthogonal_(layer.weight, gain=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, latent: SlotFeatures) -> th.Tensor:
        glob, h, pair_shared = latent
        batch = h.shape[0]
        p = self.pair(h)
        # every pair's dot product, as one matrix product, read at the pairs
        gram = th.bmm(p, p.transpose(1, 2)).reshape(batch, S * S).index_select(1, self.pair_at)
        link = gram / p.shape[-1] ** 0.5
        # A visible shared signal counts as much as both ads' own gates say: "link the pairs
        # that share infrastructure when both look bad" is one sum, not a product to discover.
        gate = self.link_gate(h)[..., 0]
        # (index_select, not gate[:, pairs]: the same numbers, forward and backward, in less
        # than half the time of advanced indexing and its backward)
        weight = self.pair_shared + gate.index_select(1, self.pair_i) + gate.index_select(
            1, self.pair_j)
        link = link + weight * pair_shared + self.pair_bias
        return th.cat([self.investigate(h).reshape(batch, -1), self.verdict(h).reshape(batch, -1),
                       link, self.end(glob)], dim=1)


class GlobalValueHead(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, latent: SlotFeatures) -> th.Tensor:
        return self.net(latent.glob)


assert (I_INVESTIGATE, I_VERDICT, I_LINK, I_END) == (0, S * 6, S * 6 + S * 9,
                                                     S * 6 + S * 9 + N_PAIRS)


class _MaskedLogSumExp(th.autograd.Function):
    """``masked.logsumexp(-1, keepdim=True)`` with the same bits forward and backward, where
    ``masked`` is ``where(masks, logits, -1e8)``, without taking ``exp`` of the masked entries:
    on CPU, ``exp`` of a number below about -88 (whose result underflows) takes a slow path, ten
    times the cost of an ordinary one, and most of the investigator's 977 actions are masked.
    torch computes ``log(sum(exp(x - max))) + max`` and, backward, ``grad * exp(x - result)``;
    a masked entry's ``exp`` is exactly 0 there and is set to 0 here, on a tensor of the same
    shape (so each legal entry's ``exp`` runs in the same lane of the same kernel)."""

    @staticmethod
    def forward(ctx, masked: th.Tensor, masks: th.Tensor) -> th.Tensor:
        top = masked.amax(dim=-1, keepdim=True)
        out = _exp_where(masks, masked - top).sum(dim=-1, keepdim=True).log_().add_(top)
        ctx.save_for_backward(masked, masks, out)
        return out

    @staticmethod
    def backward(ctx, grad: th.Tensor):
        masked, masks, out = ctx.saved_tensors
        return grad * _exp_where(masks, masked - out), None


def _exp_where(masks: th.Tensor, x: th.Tensor) -> th.Tensor:
    """``exp(x)`` where ``masks``, 0 elsewhere, without ``exp`` of the entries outside it."""
    return th.where(masks, th.where(masks, x, _ZERO).exp_(), _ZERO)


_ZERO = th.tensor(0.0)


class FastMaskableCategoricalDistribution(MaskableCategoricalDistribution):
    """sb3-contrib's masked categorical distribution (the same log-probabilities, entropy and
    mode), normalised once per batch instead of once before and once after the mask (and only
    when read), without torch's argument checks or ``exp`` of the masked logits
    (``_MaskedLogSumExp``), and sampled by inverting the cumulative distribution (one uniform
    number per row, where ``torch.multinomial`` draws one per action: most of the cost of a
    rollout step over 977 actions). Its draws come from torch's seeded generator too, so a
    seeded run is reproduced exactly, but they are not ``multinomial``'s draws."""

    _HUGE_NEG = -1e8  # what sb3-contrib puts in a masked action's logit

    def proba_distribution(self, action_logits: th.Tensor):
        self._raw = action_logits.view(-1, self.action_dim)
        self._set(None)
        return self

    def _set(self, masks: th.Tensor | None) -> None:
        self.masks = masks
        self._logits: th.Tensor | None = None
        self._probs: th.Tensor | None = None

    @property
    def logits(self) -> th.Tensor:
        """The normalised log-probabilities, masked actions at about -1e8."""
        if self._logits is None:
            raw, masks = self._raw, self.masks
            if masks is None:
                self._logits = raw - raw.logsumexp(dim=-1, keepdim=True)
            else:
                masked = th.where(masks, raw, th.tensor(self._HUGE_NEG, dtype=raw.dtype))
                total = _MaskedLogSumExp.apply(masked, masks)
                if th.isneginf(total).any():  # a row with no legal action: uniform, as torch
                    total = masked.logsumexp(dim=-1, keepdim=True)
                self._logits = masked - total
        return self._logits

    @property
    def probs(self) -> th.Tensor:
        if self._probs is None:
            self._probs = F.softmax(self.logits, dim=-1)
        return self._probs

    def apply_masking(self, masks) -> None:
        if masks is None:
            self._set(None)
            return
        self._set(th.as_tensor(masks, dtype=th.bool).reshape(self._raw.shape))

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        return self.logits.gather(-1, actions.long().reshape(-1, 1)).squeeze(-1)

    def entropy(self) -> th.Tensor:
        p_log_p = self.logits * self.probs
        if self.masks is not None:  # a masked action adds nothing, as in sb3-contrib
            p_log_p = th.where(self.masks, p_log_p, th.tensor(0.0, dtype=p_log_p.dtype))
        return -p_log_p.sum(-1)

    def sample(self) -> th.Tensor:
        cdf = self.probs.cumsum(dim=-1)
        u = th.rand(cdf.shape[0], 1, dtype=cdf.dtype) * cdf[:, -1:]
        action = th.searchsorted(cdf, u, right=True).squeeze(-1)  # the first cdf above u
        # u rounded up to the total (float32): the likeliest action instead of none
        return th.where(action < cdf.shape[1], action, self.mode())

    def mode(self) -> th.Tensor:
        return th.argmax(self.probs, dim=1)


class SlotInvestigatorPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's actor-critic with the slot extractor and per-slot heads."""

    def __init__(self, observation_space, action_space, lr_schedule, dim: int = 64, **kwargs):
        kwargs.setdefault("features_extractor_class", SlotExtractor)
        kwargs.setdefault("features_extractor_kwargs", {"dim": dim})
        kwargs["net_arch"] = {"pi": [], "vf": []}
        kwargs["share_features_extractor"] = True
        self._dim = dim
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        self.action_dist = FastMaskableCategoricalDistribution(int(action_space.n))

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        return super().load_state_dict(_traits_from_task_one_hot(state_dict), strict, **kwargs)

    def _build(self, lr_schedule) -> None:
        # Not super()._build: it would first make (and orthogonalise, a QR decomposition of a
        # 2,608 x 1,727 matrix: seconds) the flat action layer that the per-slot heads replace,
        # on every new model and every load.
        self._build_mlp_extractor()
        if self.ortho_init:
            for module in (self.features_extractor, self.mlp_extractor):
                module.apply(partial(self.init_weights, gain=np.sqrt(2)))
        self.action_net = SlotActionHead(self._dim)  # initialises its own output layers
        self.value_net = GlobalValueHead(self._dim)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)
        self.optimizer.register_load_state_dict_post_hook(_forget_reshaped_moments)


def _forget_reshaped_moments(optimizer) -> None:
    """After an optimizer state loads: drop the moments of parameters whose shape changed (a
    layer converted by ``_traits_from_task_one_hot``); they start afresh, the rest carry on."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if any(th.is_tensor(v) and v.dim() and v.shape != param.shape
                   for v in state.values()):
                del optimizer.state[param]


# The first layers that read the globals: where the task block starts in their input.
_READS_GLOBALS = {"embed.0.weight": N_SLOT + _TASK_AT,  # reads [slot row, globals]
                  "glob.0.weight": _TASK_AT}  # reads [globals, pooled slots]


def _traits_from_task_one_hot(state_dict):
    """A state dict saved when the network read the task one-hot, converted to read the task's
    traits: every first layer that took the globals gets, instead of one weight column per task,
    a bias and one column per trait that reproduce the old pre-activations exactly on every task
    that trained (solved by least squares; exact because the seen tasks' traits plus a constant
    are independent). Current state dicts pass through unchanged."""
    old_width = len(TASK_IDS)
    seen = [TASK_IDS.index(t) for t in ("task_1", "task_2", "task_3")]
    basis = th.cat([th.ones(len(seen), 1), _TASK_TRAITS[seen]], dim=1)  # (tasks, 1 + traits)
    out = dict(state_dict)
    for key, weight in state_dict.items():
        layer = next((name for name in _READS_GLOBALS if key.endswith(name)), None)
        if layer is None or weight.shape[1] != _current_width(layer, weight) + old_width - len(
                TASK_TRAIT_NAMES):
            continue
        at = _READS_GLOBALS[layer]
        per_task = weight[:, at:at + old_width]
        solution = th.linalg.lstsq(basis, per_task[:, seen].T).solution  # (1 + traits, out)
        bias_key = key[:-len("weight")] + "bias"
        out[bias_key] = state_dict[bias_key] + solution[0]
        out[key] = th.cat([weight[:, :at], solution[1:].T, weight[:, at + old_width:]], dim=1)
    return out


def _current_width(layer: str, weight: th.Tensor) -> int:
    """The input width ``layer`` has now (glob also reads the pooled slots, one per output)."""
    return N_SLOT + N_GLOBAL if layer == "embed.0.weight" else N_GLOBAL + weight.shape[0]
