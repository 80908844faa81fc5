"""The generated world: the tasks, no free label at first sight, and the fraud rings.

The key measured property: what the investigator sees before investigating is informative but
not decisive (balanced accuracy <= 0.75), and with all six evidence sources revealed a plain
linear classifier reaches >= 0.95.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudarena_env.referee import Referee
from fraudarena_env.rules.actions import EndTurn, Submit
from fraudarena_env.rules.catalog import (
    CATEGORIES,
    COUNTRIES,
    ESCALATE,
    FRAUD,
    LEGIT,
    MAX_SLOTS,
    PAYMENT_TYPES,
    RING_SIGNAL_SOURCE,
    TASK_IDS,
    TASKS,
    TLDS,
)
from fraudarena_env.rules.evidence import evidence_fields
from fraudarena_env.rules.generator import AdRows, generate
from fraudarena_env.rules.lexicon import lexical_features

TOKEN_FIELDS = ("payment_id", "landing_host", "audience_fingerprint", "campaign_fingerprint")
TOKEN_FORMAT = re.compile(r"^(pmt|host|fp|cfg)_\d{6}$")
RING_TASKS = ("task_3", "task_3_unseen")


def match(seed: int, task_id: str) -> Referee:
    r = Referee()
    r.reset_match(seed=seed, task_id=task_id)
    return r


def base_labels(r: Referee) -> np.ndarray:
    return r.rows.label[:r.ep.n_base]


def tokens_of(r: Referee, row: int) -> set[str]:
    """The ring-signal tokens an ad shows, as the text the investigator reads."""
    out = set()
    for sig, field in enumerate(TOKEN_FIELDS):
        fields = evidence_fields(r.rows, row, RING_SIGNAL_SOURCE[sig])
        out.add(fields[field])
    return out


def pooled(task_id: str, seeds) -> dict[str, np.ndarray]:
    """Surface attributes of the base ads of many matches, with labels."""
    cols = {k: [] for k in ("label", "family", "age", "tld", "pay", "country", "markers")}
    for seed in seeds:
        r = match(seed, task_id)
        n = r.ep.n_base
        rows = r.rows
        cols["label"].append(rows.label[:n])
        cols["family"].append([CATEGORIES[c].family for c in rows.category[:n]])
        cols["age"].append(rows.age_days[:n])
        cols["tld"].append(rows.tld[:n])
        cols["pay"].append(rows.payment_type[:n])
        cols["country"].append(rows.country[:n])
        cols["markers"].append(rows.markers[:n])
    return {k: np.concatenate(v) for k, v in cols.items()}


# ---------------------------------------------------------------------------- task table
EXPECTED_COUNTS = {"task_1": (10, 3, 0), "task_2": (12, 4, 2), "task_3": (14, 6, 3),
                   "task_3_unseen": (15, 8, 2)}


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_queue_has_the_task_tables_label_counts(task_id):
    for seed in range(20):
        r = match(seed, task_id)
        labels = base_labels(r)
        counts = tuple(int((labels == k).sum()) for k in (LEGIT, FRAUD, ESCALATE))
        assert counts == EXPECTED_COUNTS[task_id]
        assert r.ep.n_base == TASKS[task_id].queue_size


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_every_base_ad_has_arrived_by_the_last_round(task_id):
    r = match(0, task_id)
    assert int(r.rows.arrival_round[:r.ep.n_base].max()) <= TASKS[task_id].max_rounds
    assert r.n_base_arrived >= 1


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_escalate_ads_sit_in_the_gray_category(task_id):
    for seed in range(20):
        r = match(seed, task_id)
        labels = base_labels(r)
        cats = r.rows.category[:r.ep.n_base]
        assert all(CATEGORIES[c].family == "gray" for c in cats[labels == ESCALATE])


@pytest.mark.parametrize("task_id", ["task_1", "task_2"])
def test_tasks_without_rings_have_no_rings(task_id):
    r = match(0, task_id)
    assert r.rings == []
    assert (r.rows.ring[:r.ep.n_base] < 0).all()


# ---------------------------------------------------------------------------- rings
@pytest.mark.parametrize("task_id", RING_TASKS)
def test_ring_count_follows_the_task_table(task_id):
    for seed in range(20):
        r = match(seed, task_id)
        assert len(r.rings) == TASKS[task_id].n_rings
        for ring in r.rings:
            assert len(ring.members) >= 2
            assert all(r.rows.label[m] == FRAUD for m in ring.members)


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_ring_tokens_look_like_every_other_token(task_id):
    for seed in range(30):
        r = match(seed, task_id)
        for row in range(r.ep.n_base):
            for sig, field in enumerate(TOKEN_FIELDS):
                value = evidence_fields(r.rows, row, RING_SIGNAL_SOURCE[sig])[field]
                assert TOKEN_FORMAT.match(value), value


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_ring_token_values_are_drawn_like_non_ring_ones(task_id):
    ring_vals, other_vals = [], []
    for seed in range(200):
        r = match(seed, task_id)
        for row in range(r.ep.n_base):
            vals = [int(t.split("_")[1]) for t in tokens_of(r, row)]
            (ring_vals if r.rows.ring[row] >= 0 else other_vals).extend(vals)
    # Same uniform range: the means agree within a few percent of the range.
    assert abs(np.mean(ring_vals) - np.mean(other_vals)) < 30_000
    assert abs(np.std(ring_vals) - np.std(other_vals)) < 30_000


def _ring_pairs(task_id: str, topology: str, seeds=range(60)):
    found = 0
    for seed in seeds:
        r = match(seed, task_id)
        for ring in r.rings:
            if ring.topology == topology:
                found += 1
                yield r, ring
    assert found, f"no {topology} ring in {task_id} over the seeds tried"


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_clique_members_all_share_a_token(task_id):
    for r, ring in _ring_pairs(task_id, "clique"):
        for a, b in itertools.combinations(ring.members, 2):
            assert tokens_of(r, a) & tokens_of(r, b)


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_chain_neighbours_share_and_non_neighbours_do_not(task_id):
    for r, ring in _ring_pairs(task_id, "chain"):
        m = ring.members
        for i, j in itertools.combinations(range(len(m)), 2):
            shared = tokens_of(r, m[i]) & tokens_of(r, m[j])
            if j == i + 1:
                assert shared
            else:
                assert not shared


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_hub_spokes_share_with_the_hub_only(task_id):
    for r, ring in _ring_pairs(task_id, "hub"):
        hub, spokes = ring.members[0], ring.members[1:]
        for s in spokes:
            assert tokens_of(r, hub) & tokens_of(r, s)
        for a, b in itertools.combinations(spokes, 2):
            assert not tokens_of(r, a) & tokens_of(r, b)


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_ring_members_share_no_token_with_fraud_outside_their_ring(task_id):
    for seed in range(60):
        r = match(seed, task_id)
        n = r.ep.n_base
        for ring in r.rings:
            outsiders = [x for x in range(n) if r.rows.ring[x] != ring.ring_id
                         and r.rows.label[x] != LEGIT]
            for m in ring.members:
                for x in outsiders:
                    assert not tokens_of(r, m) & tokens_of(r, x)


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_hard_tasks_keep_at_least_two_decoy_fraud_ads_outside_rings(task_id):
    for seed in range(30):
        r = match(seed, task_id)
        n = r.ep.n_base
        decoys = (r.rows.label[:n] == FRAUD) & (r.rows.ring[:n] < 0)
        assert decoys.sum() >= 2


@pytest.mark.parametrize("task_id", RING_TASKS)
def test_all_three_topologies_occur(task_id):
    seen = {ring.topology for seed in range(30) for ring in match(seed, task_id).rings}
    assert seen == {"clique", "chain", "hub"}


# ---------------------------------------------------------------------------- overlaps
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_legit_ads_appear_in_risky_categories(task_id):
    p = pooled(task_id, range(200))
    legit_family = p["family"][p["label"] == LEGIT]
    assert (legit_family != "legit").mean() > 0.1


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_fraud_appears_in_legit_family_categories(task_id):
    p = pooled(task_id, range(200))
    fraud_family = p["family"][p["label"] == FRAUD]
    assert (fraud_family == "legit").mean() > 0.1


@pytest.mark.parametrize("attr, n_values", [("age", None), ("tld", len(TLDS)),
                                            ("pay", len(PAYMENT_TYPES)),
                                            ("country", len(COUNTRIES)), ("markers", 4)])
def test_surface_attribute_ranges_overlap_between_classes(attr, n_values):
    p = pooled("task_3", range(200))
    bad = p["label"] != LEGIT
    legit, risky = p[attr][~bad], p[attr][bad]
    # The middle halves of both classes overlap: no threshold separates them.
    lq, hq = np.percentile(legit, [25, 75]), np.percentile(risky, [25, 75])
    assert max(lq[0], hq[0]) <= min(lq[1], hq[1]), (attr, lq, hq)
    if n_values is not None:
        # Most values are used by both classes.
        shared = set(np.unique(legit)) & set(np.unique(risky))
        assert len(shared) >= max(2, n_values // 2)


# ---------------------------------------------------------------------------- information value
IV_SEEDS = range(300)


def _information_value_data():
    """Features of every task_3 base ad over many matches.

    The match is played to the end with passes only, so every base ad has arrived and its copy
    is the text the investigator read.
    """
    pre, full, cat, y = [], [], [], []
    for seed in IV_SEEDS:
        r = match(seed, "task_3")
        while not r.done:
            role = r.current_role
            r.apply(role, Submit() if role == "auditor" else EndTurn())
        rows = r.rows
        for s in np.flatnonzero(r.present):
            row = int(r.slot_row[s])
            assert row < r.ep.n_base
            onehot = np.zeros(len(CATEGORIES))
            onehot[rows.category[row]] = 1.0
            surface = [np.log(rows.age_days[row]), rows.tld[row], rows.payment_type[row],
                       rows.country[row], rows.markers[row]]
            f = np.concatenate([onehot, surface, lexical_features(r.copy[s])])
            pre.append(f)
            full.append(np.concatenate([f, rows.evidence[row]]))
            cat.append(onehot)
            y.append(rows.label[row] != LEGIT)  # fraud-or-escalate vs legit
    return (np.asarray(pre, float), np.asarray(full, float), np.asarray(cat, float),
            np.asarray(y, float))


def _fit_logistic(X, y, steps=400, lr=0.5):
    """Class-balanced logistic regression by gradient descent on standardised features."""
    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1.0
    Z = np.hstack([(X - mu) / sd, np.ones((len(X), 1))])
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    beta = np.zeros(Z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-Z @ beta))
        beta -= lr * Z.T @ (w * (p - y)) / w.sum()
    return lambda Xn: np.hstack([(Xn - mu) / sd, np.ones((len(Xn), 1))]) @ beta > 0


def _balanced_accuracy(X, y) -> float:
    """Train on the first half of the matches, score on the held-out second half."""
    half = len(y) // 2
    predict = _fit_logistic(X[:half], y[:half])
    pred, truth = predict(X[half:]), y[half:] == 1
    return float(0.5 * (pred[truth].mean() + (~pred[~truth]).mean()))


@pytest.fixture(scope="module")
def information_value():
    pre, full, cat, y = _information_value_data()
    out = {"pre_investigation": _balanced_accuracy(pre, y),
           "all_evidence": _balanced_accuracy(full, y),
           "category_only": _balanced_accuracy(cat, y)}
    print(f"\ninformation value (task_3, {len(y)} ads, balanced accuracy): " +
          ", ".join(f"{k}={v:.3f}" for k, v in out.items()))
    return out


def test_pre_investigation_features_are_not_decisive(information_value):
    assert information_value["pre_investigation"] <= 0.75, information_value


def test_category_alone_is_not_decisive(information_value):
    assert information_value["category_only"] <= 0.75, information_value


def test_all_six_evidence_sources_are_decisive(information_value):
    assert information_value["all_evidence"] >= 0.95, information_value


def test_pre_investigation_features_are_informative(information_value):
    # "informative, not decisive": the surface must still beat a coin flip.
    assert information_value["pre_investigation"] >= 0.55


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_a_proposal_shows_its_tactic_on_its_own_noise(task_id):
    """Proposal rows are precomputed at reset for every tactic; a proposal must show exactly
    what ``signals`` gives for its tactic's surface strength and evidence profile and its own
    row's noise (the base ads' formulas), whichever other tactics were proposed before it."""
    from fraudarena_env.rules.catalog import EVIDENCE_PROFILE, TACTIC_SURFACE, TACTICS
    from fraudarena_env.rules.generator import N_NORMAL, signals

    for seed in range(3):
        tactics = [(seed + k) % len(TACTICS) for k in range(3)]
        r = match(seed, task_id)
        normal = np.random.default_rng(seed).standard_normal(  # the match's first draw
            (r.ep.n_base + MAX_SLOTS, N_NORMAL))
        category = r.allowed_categories[0]
        for tactic in tactics:
            r.step_as_fraudster({"action_type": "propose_ad", "category": category,
                                 "tactic": TACTICS[tactic]})
            row = r.ep.n_base + r.proposals_used - 1
            age, surface, markers, evidence = signals(
                np.asarray([TACTIC_SURFACE[tactic]]), np.asarray([EVIDENCE_PROFILE[1 + tactic]]),
                normal[row:row + 1])
            rows = r.rows
            assert rows.tactic[row] == tactic
            assert rows.age_days[row] == int(age[0])
            assert rows.markers[row] == int(markers[0])
            assert [rows.tld[row], rows.payment_type[row], rows.country[row]] == \
                surface[0].tolist()
            np.testing.assert_array_equal(rows.evidence[row], evidence[0].astype(np.float32))
            if r.phase != "fraudster_turn":
                break


@settings(max_examples=15, deadline=None)
@given(task_id=st.sampled_from(TASK_IDS), seeds=st.lists(st.integers(0, 2**63 - 1), min_size=1,
                                                         max_size=6),
       max_rounds=st.integers(1, 8), max_proposals=st.integers(1, 14))
def test_many_matches_drawn_together_are_each_drawn_as_alone(task_id, seeds, max_rounds,
                                                              max_proposals):
    """``generate_into`` (a batch of matches, into a state's rows) draws every match exactly as
    ``generate`` draws it from its own seed: rows, rings, slot order, proposal signals."""
    from fraudarena_env.rules.generator import generate_into
    from fraudarena_env.rules.state import MatchState

    task = TASKS[task_id]
    state = MatchState.zeros(len(seeds) + 2)
    state.rows.label[:] = 7  # whatever a previous match left is overwritten or cleared
    matches = np.arange(len(seeds)) + 1
    batch = generate_into(task, seeds, max_rounds, max_proposals, state.rows, matches)
    for seed, m, got in zip(seeds, matches, batch):
        want = generate(task, np.random.Generator(np.random.PCG64(seed)), max_rounds,
                        max_proposals)
        for f in dataclasses.fields(AdRows):
            a, b = getattr(got.rows, f.name), getattr(want.rows, f.name)
            np.testing.assert_array_equal(a, b, err_msg=f.name)
            assert not getattr(state.rows, f.name)[m, len(b):].any(), f.name
        assert got.rings == want.rings and got.n_base == want.n_base
        np.testing.assert_array_equal(got.slot_order, want.slot_order)
        np.testing.assert_array_equal(got.proposal_ring_tokens, want.proposal_ring_tokens)
        for f in dataclasses.fields(got.proposal_signals):
            np.testing.assert_array_equal(getattr(got.proposal_signals, f.name),
                                          getattr(want.proposal_signals, f.name))
