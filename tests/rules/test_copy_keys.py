"""Template copy as numbers (``rules.copy_keys``) reads exactly as its text does."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudarena_env.rules import audit
from fraudarena_env.rules.catalog import AD_IDS, CATEGORIES, TRUST_PHRASES
from fraudarena_env.rules.copy_keys import (
    FINDINGS,
    CopyTable,
    blurb_text,
    copy_text,
    key_category,
    softened,
    targeting_text,
    template_key,
    track_b_batch,
)
from fraudarena_env.rules.fraudster import drop_one_risk_phrase
from fraudarena_env.rules.lexicon import lexical_features
from fraudarena_env.rules.referee import Referee


@st.composite
def proposals(draw):
    """A proposal's copy as the tensor face makes it: a template, softened up to its markers."""
    category = draw(st.integers(0, len(CATEGORIES) - 1))
    markers = draw(st.integers(0, 6))
    return (category, draw(st.integers(0, 2)), markers, draw(st.floats(0, 1, exclude_max=True)),
            draw(st.integers(0, markers)), draw(st.integers(-1, len(TRUST_PHRASES) - 1)),
            draw(st.integers(0, len(CATEGORIES[category].targeting) - 1)))


def _key(category, body, markers, u_marker, softens) -> int:
    key = template_key([category], [body], [markers], [u_marker])
    for _ in range(softens):
        key = softened(key)
    return int(key[0])


@settings(max_examples=200, deadline=None)
@given(p=proposals())
def test_a_key_stands_for_the_copy_the_referee_writes_and_softens(p):
    category, body, markers, u_marker, softens, _, _ = p
    text = Referee._template_copy(category, body, markers, u_marker)
    for _ in range(softens):
        text = drop_one_risk_phrase(text)
    key = _key(category, body, markers, u_marker, softens)
    assert copy_text(key) == text
    assert key_category(key) == category
    np.testing.assert_array_equal(CopyTable().lexical([key])[0], lexical_features(text))


@settings(max_examples=60, deadline=None)
@given(matches=st.lists(st.lists(proposals(), max_size=8), min_size=1, max_size=6),
       repeat=st.integers(0, 3))
def test_track_b_of_many_matches_is_track_b_of_each_to_the_bit(matches, repeat):
    # some matches propose one copy more than once, so that repetition is met
    matches = [m + m[:1] * repeat if m else m for m in matches]
    width = max(max(len(m) for m in matches), 1)
    shape = (len(matches), width)
    keys, blurb, aim = np.zeros(shape, np.int64), np.full(shape, -1), np.zeros(shape, np.int64)
    proposed = np.zeros(shape, bool)
    for j, match in enumerate(matches):
        for i, (c, b, k, u, softens, phrase, t) in enumerate(match):
            keys[j, i], blurb[j, i], aim[j, i] = _key(c, b, k, u, softens), phrase, t
            proposed[j, i] = True
    bits, plausibility = track_b_batch(CopyTable(capacity=2), keys, blurb, aim, proposed)
    for j, match in enumerate(matches):
        texts = [audit.ProposalText(AD_IDS[i], c, copy_text(int(keys[j, i])), blurb_text(phrase),
                                    targeting_text(c, t))
                 for i, (c, _, _, _, _, phrase, t) in enumerate(match)]
        flags, plaus = audit.track_b(texts)
        found = {(FINDINGS[f], AD_IDS[i]) for i in range(len(match)) for f in range(len(FINDINGS))
                 if bits[j, i] >> f & 1}
        assert found == flags
        assert plausibility[j, :len(match)].tolist() == list(plaus.values())
        assert not plausibility[j, len(match):].any() and not bits[j, len(match):].any()


def test_a_copy_proposed_again_is_flagged_as_repetition_and_the_first_is_not():
    key = _key(0, 0, 2, 0.0, 0)
    bits, _ = track_b_batch(CopyTable(), np.asarray([[key, key]]), np.asarray([[-1, -1]]),
                            np.zeros((1, 2), np.int64), np.ones((1, 2), bool))
    repeated = FINDINGS.index("template_repetition")
    assert [b >> repeated & 1 for b in bits[0].tolist()] == [0, 1]


def test_a_table_that_grows_keeps_every_answer_it_gave():
    table = CopyTable(capacity=1)
    keys = [_key(c, 0, 1, 0.0, 0) for c in range(len(CATEGORIES))]
    first = table.lexical(keys[:1])
    table.lexical(keys)  # grows several times
    np.testing.assert_array_equal(table.lexical(keys[:1]), first)
    assert table.ids(keys).tolist() == list(range(len(keys)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, len(CATEGORIES) - 1), st.integers(0, 2),
                                   st.integers(0, 3)), min_size=1, max_size=6),
                min_size=1, max_size=6))
def test_a_keys_id_is_the_order_it_was_first_met_in(batches):
    """Keys met batch after batch, some again, in any order: each key's id is its place among
    the distinct keys as they were first met, and stays so."""
    table, met = CopyTable(capacity=2), []
    for batch in batches:
        keys = [_key(c, body, markers, 0.0, 0) for c, body, markers in batch]
        met.extend(k for k in dict.fromkeys(keys) if k not in met)
        assert table.ids(np.asarray(keys)).tolist() == [met.index(k) for k in keys]
    assert table.ids(np.asarray(met)).tolist() == list(range(len(met)))
