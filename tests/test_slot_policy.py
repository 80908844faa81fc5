"""The slot-structured investigator policy: one network for every slot, read through the layout."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sb3_contrib")

import torch as th  # noqa: E402
from sb3_contrib import MaskablePPO  # noqa: E402

from fraudarena_env import RoleEnv  # noqa: E402
from fraudarena_env.catalog import TASK_IDS  # noqa: E402
from fraudarena_env.faces.encoding import (  # noqa: E402
    I_END,
    I_INVESTIGATE,
    I_LINK,
    I_VERDICT,
    PAIR_INDEX,
    PAIRS,
    Observer,  # noqa: E402
)
from fraudarena_env.sb3 import imitate  # noqa: E402
from fraudarena_env.slot_policy import (  # noqa: E402
    _TASK_AT,
    N_SLOT,
    TASK_TRAIT_NAMES,
    TASK_TRAITS,
    SlotFeatures,
    SlotInvestigatorPolicy,
)

LAYOUT = {name: (offset, shape) for name, offset, shape in Observer("investigator").layout}


def _model(seed: int = 0) -> MaskablePPO:
    return MaskablePPO(SlotInvestigatorPolicy, RoleEnv("investigator", task_id="task_3"),
                       n_steps=64, batch_size=32, seed=seed, device="cpu")


def _logits(model, obs: np.ndarray) -> np.ndarray:
    policy = model.policy
    with th.no_grad():
        x = th.as_tensor(obs[None].astype(np.float32))
        return policy.action_net(policy.extract_features(x, policy.pi_features_extractor))[0].numpy()


def _swap_slots(obs: np.ndarray, a: int, b: int) -> np.ndarray:
    """The same observation with ad slots a and b exchanged, pair blocks included."""
    out = obs.copy()
    for name, (offset, shape) in LAYOUT.items():
        if name in ("pair_shared_signals", "pair_linked"):
            block = out[offset:offset + shape[0]]
            full = np.zeros((32, 32), np.float32)
            i, j = np.triu_indices(32, 1)
            full[i, j] = block[PAIR_INDEX[i, j]]
            full = full + full.T
            perm = np.arange(32)
            perm[[a, b]] = perm[[b, a]]
            full = full[perm][:, perm]
            block[PAIR_INDEX[i, j]] = full[i, j]
        elif len(shape) >= 1 and shape[0] == 32:
            rows = out[offset:offset + int(np.prod(shape))].reshape(shape)
            rows[[a, b]] = rows[[b, a]]
    return out


def test_the_policy_scores_every_action_of_the_catalogue():
    model = _model()
    env = RoleEnv("investigator", task_id="task_3")
    obs, _ = env.reset(seed=3)
    assert _logits(model, obs).shape == (I_END + 1,)


def test_exchanging_two_slots_exchanges_their_action_scores():
    """One network per slot: the policy is equivariant to the order of the slots."""
    model = _model()
    env = RoleEnv("investigator", task_id="task_3")
    obs, _ = env.reset(seed=11)
    present = np.flatnonzero(obs[LAYOUT["present"][0]:LAYOUT["present"][0] + 32])
    a, b = int(present[0]), 31 if present[0] != 31 else 30
    before, after = _logits(model, obs), _logits(model, _swap_slots(obs, a, b))
    for base, width in ((I_INVESTIGATE, 6), (I_VERDICT, 9)):
        np.testing.assert_allclose(before[base + a * width:base + (a + 1) * width],
                                   after[base + b * width:base + (b + 1) * width], atol=1e-5)
    c = int(present[1])
    np.testing.assert_allclose(before[I_LINK + PAIR_INDEX[a, c]],
                               after[I_LINK + PAIR_INDEX[b, c]], atol=1e-5)
    np.testing.assert_allclose(before[I_END], after[I_END], atol=1e-5)


def test_a_links_score_reads_both_ads_embeddings_gates_and_their_shared_signals():
    """Link (i, j) scores <p_i, p_j> / sqrt(d) + (w + g_i + g_j) * shared_ij + b, from the
    slots' embeddings, pair by pair, in the catalogue's order of pairs."""
    head = _model().policy.action_net
    g = th.Generator().manual_seed(3)
    glob, h = th.randn(2, head.dim, generator=g), th.randn(2, 32, head.dim, generator=g)
    shared = th.rand(2, len(PAIRS), generator=g)
    with th.no_grad():
        link = head(SlotFeatures(glob, h, shared))[:, I_LINK:I_END]
        p, gate = head.pair(h), head.link_gate(h)[..., 0]
    for k, (i, j) in enumerate(PAIRS.tolist()):
        expected = (p[:, i] * p[:, j]).sum(-1) / p.shape[-1] ** 0.5 + (
            head.pair_shared + gate[:, i] + gate[:, j]) * shared[:, k] + head.pair_bias
        th.testing.assert_close(link[:, k], expected.detach(), rtol=1e-5, atol=1e-5)


def test_imitation_teaches_the_scripted_investigators_choices():
    model = _model(seed=1)
    first = imitate(model, "investigator", ("task_2",), samples=300, epochs=1, seed=1)
    later = imitate(model, "investigator", ("task_2",), samples=300, epochs=6, seed=1)
    assert later < first


def test_the_policy_sees_a_task_by_its_traits_so_an_unseen_task_plays_like_its_twin():
    model = _model()
    env = RoleEnv("investigator", task_id="task_3_unseen")
    obs, _ = env.reset(seed=5)
    offset, shape = LAYOUT["task"]
    as_task_3 = obs.copy()
    as_task_3[offset:offset + shape[0]] = 0.0
    as_task_3[offset + TASK_IDS.index("task_3")] = 1.0
    assert not np.array_equal(obs, as_task_3)
    np.testing.assert_array_equal(_logits(model, obs), _logits(model, as_task_3))
    as_task_2 = obs.copy()
    as_task_2[offset:offset + shape[0]] = 0.0
    as_task_2[offset + TASK_IDS.index("task_2")] = 1.0
    assert not np.allclose(_logits(model, obs), _logits(model, as_task_2))


def test_a_checkpoint_that_read_the_task_one_hot_loads_and_plays_the_same_on_trained_tasks():
    """Old checkpoints had one weight column per task id in each first layer that read the
    globals; loading folds them into a bias and one column per trait, exactly on task_1-3."""
    model = _model(seed=3)
    new = model.policy.state_dict()
    gen = th.Generator().manual_seed(0)
    legacy, at = {}, {"embed": N_SLOT + _TASK_AT, "glob": _TASK_AT}
    one_hots = {}  # per layer: the state dict names the shared extractor three times
    for key, weight in new.items():
        layer = key.split(".")[-3] if key.endswith("0.weight") else ""
        if layer in at:  # widen: the trait columns become one column per task id
            one_hot = one_hots.setdefault(
                layer, th.randn(weight.shape[0], len(TASK_IDS), generator=gen))
            legacy[key] = th.cat([weight[:, :at[layer]], one_hot,
                                  weight[:, at[layer] + len(TASK_TRAIT_NAMES):]], dim=1)
        else:
            legacy[key] = weight.clone()
    model.policy.load_state_dict(legacy)
    loaded = model.policy.state_dict()
    for key, weight in legacy.items():
        layer = key.split(".")[-3] if key.endswith("0.weight") else ""
        if layer not in at:
            continue
        bias = key[:-len("weight")] + "bias"
        x = th.randn(4, weight.shape[1], generator=gen)
        for task in ("task_1", "task_2", "task_3"):
            x_old = x.clone()
            x_old[:, at[layer]:at[layer] + len(TASK_IDS)] = 0.0
            x_old[:, at[layer] + TASK_IDS.index(task)] = 1.0
            x_new = th.cat([x_old[:, :at[layer]],
                            th.as_tensor(TASK_TRAITS[TASK_IDS.index(task)]).expand(4, -1),
                            x_old[:, at[layer] + len(TASK_IDS):]], dim=1)
            old = x_old @ weight.T + legacy[bias]
            th.testing.assert_close(x_new @ loaded[key].T + loaded[bias], old,
                                    rtol=1e-5, atol=1e-5)


def test_the_fast_distribution_is_sb3_contribs_masked_categorical():
    """The same log-probabilities, entropy and mode as sb3-contrib's masked categorical, and
    samples that only pick legal actions, at the rate the probabilities say."""
    from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution

    from fraudarena_env.slot_policy import FastMaskableCategoricalDistribution

    th.manual_seed(0)
    logits = th.randn(64, 977)
    masks = th.rand(64, 977) < 0.1
    masks[:, 0] = True
    ours = FastMaskableCategoricalDistribution(977).proba_distribution(logits)
    theirs = MaskableCategoricalDistribution(977).proba_distribution(logits)
    for d in (ours, theirs):
        d.apply_masking(masks.numpy())
    actions = th.where(masks, th.rand(64, 977), -1.0).argmax(dim=1)
    assert th.allclose(ours.log_prob(actions), theirs.log_prob(actions), atol=1e-5)
    assert th.allclose(ours.entropy(), theirs.entropy(), atol=1e-5)
    assert th.equal(ours.mode(), theirs.mode())
    drawn = th.stack([ours.sample() for _ in range(4000)], dim=1)  # (64, 4000)
    assert masks.gather(1, drawn).all()
    rate = th.zeros(977).index_add_(0, drawn[0], th.ones(4000)) / 4000
    assert (rate - theirs.distribution.probs[0]).abs().max() < 0.03


def test_the_masked_normalisation_has_torchs_bits_forward_and_backward():
    """The distribution normalises the masked logits without ``exp`` of the masked entries (the
    slow underflow path); its log-probabilities and their gradients are torch's to the bit, so a
    seeded run trains the same network as with ``logsumexp``. A row with no legal action is
    uniform, as in torch."""
    from fraudarena_env.slot_policy import FastMaskableCategoricalDistribution

    g = th.Generator().manual_seed(1)
    for batch in (1, 7, 128, 300):
        raw = (3 * th.randn(batch, 977, generator=g)).requires_grad_()
        masks = th.rand(batch, 977, generator=g) < 0.15
        masks[:, -1] = True
        weights = th.randn(batch, 977, generator=g) * masks
        masked = th.where(masks, raw, th.tensor(-1e8))
        expected = masked - masked.logsumexp(dim=-1, keepdim=True)
        expected_grad, = th.autograd.grad((expected * weights).sum(), raw)
        dist = FastMaskableCategoricalDistribution(977).proba_distribution(raw)
        dist.apply_masking(masks.numpy())
        grad, = th.autograd.grad((dist.logits * weights).sum(), raw)
        assert th.equal(dist.logits, expected)
        assert th.equal(grad, expected_grad)
    dist = FastMaskableCategoricalDistribution(5).proba_distribution(th.zeros(2, 5))
    dist.apply_masking(np.array([[True] * 5, [False] * 5]))
    assert th.allclose(dist.probs, th.full((2, 5), 0.2))
