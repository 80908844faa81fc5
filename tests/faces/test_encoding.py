"""The tensor face against the rules: every per-ad entry of every role's observation equals what
the referee's state says, recomputed here from scratch with plain numpy.

Observers update their vectors incrementally from the referee's ``changes`` (an arrival, a pull,
a verdict each touch a few entries); these tests are the independent judge of that bookkeeping,
through scripted matches and masked-random play (which also modifies proposals, links ads and
raises flags).
"""

from __future__ import annotations

import numpy as np
import pytest

from fraudarena_env.arena import Arena
from fraudarena_env.faces.encoding import (
    EVIDENCE_SCALE,
    MARKER_CAP,
    OBS_BOUND,
    OPS,
    PAIRS,
    Observer,
    decode_surface,
    shared_signals,
)
from fraudarena_env.policies import RandomPolicy
from fraudarena_env.policies.base import views
from fraudarena_env.referee import Referee
from fraudarena_env.rules.catalog import (
    CATEGORIES,
    COUNTRIES,
    MAX_PULLS_PER_AD,
    MAX_SLOTS,
    PAYMENT_TYPES,
    TACTICS,
    TASK_IDS,
    TLDS,
)

S = MAX_SLOTS
ROLES = ("fraudster", "investigator", "auditor")


def _onehot(width: int, present: np.ndarray, index: np.ndarray) -> np.ndarray:
    out = np.zeros((S, width))
    out[present, index[present]] = 1
    return out


def _surface(facts: dict, where: np.ndarray) -> np.ndarray:
    out = np.zeros((S, 5))
    out[:, 0] = np.log1p(facts["age_days"]) / 8.3
    out[:, 1] = facts["tld"] / (len(TLDS) - 1)
    out[:, 2] = facts["payment_type"] / (len(PAYMENT_TYPES) - 1)
    out[:, 3] = facts["country"] / (len(COUNTRIES) - 1)
    out[:, 4] = np.minimum(facts["markers"], 6) / 6
    out[~where] = 0
    return out


def expected_views(role: str, ref) -> dict[str, np.ndarray]:
    """The per-ad views of ``role``'s observation, from the referee's state alone."""
    present = ref.present.copy()
    if role == "investigator" and ref.phase == "fraudster_turn":
        # while the fraudster moves, the investigator sees none of the round's arrivals yet
        present &= ref.arrived != ref.round_number
    rows = ref.facts_of()  # every slot's, by name
    status = _onehot(4, present, ref.verdict.astype(np.int64) + 1)
    category = _onehot(len(CATEGORIES), present, rows["category"].astype(np.int64))
    evidence = np.clip(rows["evidence"] / EVIDENCE_SCALE, -OBS_BOUND, OBS_BOUND)
    out = {"present": present, "status": status, "pulled": ref.pulled,
           "lexical": np.where(present[:, None], ref.lexical, 0)}
    if role == "investigator":
        pending = present & (ref.verdict < 0)
        shared = shared_signals(ref)
        out.update(
            arrived_round=np.where(present, ref.arrived / ref.max_rounds, 0),
            surface=_surface(rows, present),
            evidence=np.where(ref.pulled, evidence, 0),
            pulls_left=np.where(pending, (MAX_PULLS_PER_AD - ref.n_pulls) / MAX_PULLS_PER_AD, 0),
            collisions=np.count_nonzero(shared, axis=1) / S,
            pair_shared_signals=shared[PAIRS[:, 0], PAIRS[:, 1]] / 4,
            pair_linked=ref.linked[PAIRS[:, 0], PAIRS[:, 1]])
    elif role == "fraudster":
        mine = ref.is_proposal & present
        out.update(
            mine=mine,
            my_tactic=_onehot(len(TACTICS), mine, rows["tactic"].astype(np.int64)),
            my_evidence=np.where(mine[:, None], evidence, 0),
            my_surface=_surface(rows, mine),
            trusted=ref.trusted & mine)
    elif ref.play_finished:  # the auditor sees the record once play has run to its end
        manual = ref.manual & present
        out.update(
            label=_onehot(3, present, rows["label"].astype(np.int64)),
            manual=manual, proposal=ref.is_proposal & present,
            confidence=np.where(present, ref.confidence, 0),
            severity=np.where(present, rows["severity"], 0),
            evidence=np.where(ref.pulled, evidence, 0),
            calibration=np.asarray([(n / S, c, a) for n, c, a in ref.calibration]))
    else:
        out = {name: np.zeros_like(np.asarray(value, float)) for name, value in out.items()}
    if role != "auditor" or ref.play_finished:
        out["category"] = category
    return out


def check_observer(observer: Observer, ref) -> None:
    vector = observer.fill(ref)
    views = {name: vector[o:o + int(np.prod(shape))].reshape(shape)
             for name, o, shape in observer.layout}
    for name, expected in expected_views(observer.role, ref).items():
        got = views[name]
        expected = np.asarray(expected, float)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{observer.role} view {name!r} (phase {ref.phase})")


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_scripted_matches_observe_what_the_referee_holds(task_id, monkeypatch):
    """Every observation a scripted policy acts on matches the referee's state."""
    real_observe = Observer.observe
    checked = set()

    def observe_and_check(self, ref):
        result = real_observe(self, ref)
        check_observer(self, ref)
        checked.add(self.role)
        return result

    monkeypatch.setattr(Observer, "observe", observe_and_check)
    arena = Arena()
    for seed in range(4):
        arena.play(task_id, seed)
    assert checked == set(ROLES)


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_random_play_observes_what_the_referee_holds(task_id):
    """Masked-random play (proposal edits, links, flags included): each role's vector matches
    the referee's state whenever it is read, whether it was read last step or long ago."""
    arena = Arena(illegal_action="penalize")
    for seed in range(6):
        policies = {role: RandomPolicy(role, seed=100 * seed + k) for k, role in enumerate(ROLES)}
        ref = arena.referee
        ref.reset_match(seed=seed, task_id=task_id)
        observers = {role: Observer(role) for role in ROLES}
        step = 0
        while not ref.done:
            role = ref.current_role
            vector, mask = observers[role].observe(ref)
            check_observer(observers[role], ref)
            if step % 5 == 0:  # the others, read now and then
                for other in ROLES:
                    check_observer(observers[other], ref)
            ref.apply(role, OPS[role][policies[role].act_tensor(vector, mask)])
            step += 1
        for role in ROLES:
            check_observer(observers[role], ref)


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_incremental_masks_equal_the_rules_mask(task_id):
    """Each observer's incremental mask equals the mask built from scratch on the referee's one
    legality rule (the role modules' ``legal_mask``), at every step of masked-random play on all three roles."""
    ref = Referee()
    for seed in range(3):
        policies = {role: RandomPolicy(role, seed=10 * seed + k) for k, role in enumerate(ROLES)}
        ref.reset_match(seed=seed, task_id=task_id)
        observers = {role: Observer(role) for role in ROLES}
        while not ref.done:
            role = ref.current_role
            vector, mask = observers[role].observe(ref)
            for other in ROLES:
                np.testing.assert_array_equal(observers[other].mask(ref), ref.legal_mask(other))
            ref.apply(role, OPS[role][policies[role].act_tensor(vector, mask)])


@pytest.mark.parametrize("role", ROLES)
def test_every_entry_of_every_role_vector_has_its_own_name(role):
    names = Observer(role).feature_names()
    assert len(names) == Observer(role).size
    assert len(set(names)) == len(names)


def test_columns_are_named_by_what_they_hold():
    names = Observer("investigator").feature_names()
    at = dict(zip(names, range(len(names))))
    assert "surface[ad_003].landing_tld" in at and "phase.audit_phase" in at
    assert "pulled[ad_001].payment_method" in at and "pair_linked.ad_001~ad_002" in at
    assert at["surface[ad_001].risk_markers"] == at["surface[ad_001].account_age"] + 4


def test_policies_read_the_surface_back_exactly_as_it_was_drawn():
    ref = Referee()
    ref.reset_match(seed=11, task_id="task_3")
    ref.step_as_fraudster({"action_type": "end_turn"})  # the queue shows at the investigator's turn
    obs = Observer("investigator")
    vector = obs.fill(ref)
    surface = views("investigator", vector, ["surface"])["surface"]
    read = decode_surface(surface)
    for s in np.flatnonzero(ref.present).tolist():
        age, tld, payment, country, markers = ref.surface_of(s)
        assert read["landing_tld"][s] == tld
        assert read["payment_type"][s] == payment
        assert read["country"][s] == country
        assert read["risk_markers"][s] == min(markers, MARKER_CAP)
        assert abs(read["account_age"][s] - age) <= 0.5 + 1e-3 * age


def test_the_investigator_counts_only_the_ads_it_sees():
    """While the fraudster moves, the round's arrivals are out of the investigator's pending
    count as well as out of its ad rows; its turn shows them all."""
    ref = Referee()
    ref.reset_match(seed=4, task_id="task_3")
    ref.step_as_fraudster({"action_type": "propose_ad", "category": "ecommerce",
                           "tactic": "subtle"})
    obs = Observer("investigator")
    at = obs.off["pending_count"]
    assert ref.n_arrived > 0 and obs.fill(ref)[at] == 0.0
    assert not obs.fill(ref)[obs.off["present"]:obs.off["present"] + S].any()
    ref.step_as_fraudster({"action_type": "end_turn"})
    assert obs.fill(ref)[at] == np.float32(ref.n_arrived / S)


def test_a_match_ended_on_an_illegal_action_observes_what_the_referee_holds():
    """The env's terminate mode ends the match in the referee; every role's vector, read
    before and after, then matches the referee's state."""
    ref = Referee(record="ops")
    ref.reset_match(seed=2, task_id="task_3")
    observers = {role: Observer(role) for role in ROLES}
    policies = {role: RandomPolicy(role, seed=k) for k, role in enumerate(ROLES)}
    for _ in range(15):
        role = ref.current_role
        vector, mask = observers[role].observe(ref)
        ref.apply(role, OPS[role][policies[role].act_tensor(vector, mask)])
    ref.end_on_illegal(ref.current_role, None, "a reason", -1.0)
    for role in ROLES:
        check_observer(observers[role], ref)
