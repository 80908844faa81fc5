"""The lexicon's readings of a text, pinned to their definitions character by character (the
module counts in C where the text is ASCII; these say what it must count)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from fraudarena_env.rules import lexicon

VOWELS = set("aeiouyAEIOUY")


def vowel_density(text: str) -> float:
    """Vowels among the letters (any alphabet's letters count; only ASCII vowels are vowels)."""
    letters = [c for c in text if c.isalpha()]
    return sum(c in VOWELS for c in letters) / len(letters) if letters else 0.0


def wordlike_share(text: str) -> float:
    """Among runs of ASCII letters: the share of two letters or fewer, or with a vowel and no
    more than four consonants in a row."""
    words = re.findall("[A-Za-z]+", text)
    if not words:
        return 0.0
    ok = 0
    for w in words:
        run = longest = 0
        for c in w:
            run = 0 if c in VOWELS else run + 1
            longest = max(longest, run)
        ok += len(w) <= 2 or (any(c in VOWELS for c in w) and longest <= 4)
    return ok / len(words)


def is_gibberish(text: str) -> bool:
    """Short, or (with enough letters) few vowels, or few word-like tokens."""
    if len(text.strip()) < lexicon.GIBBERISH_MIN_LENGTH:
        return True
    if sum(c.isalpha() for c in text) >= lexicon.GIBBERISH_MIN_LENGTH and \
            vowel_density(text) < lexicon.GIBBERISH_MIN_VOWEL_DENSITY:
        return True
    return wordlike_share(text) < lexicon.GIBBERISH_MIN_WORDLIKE


# ad-like text: letters (consonant runs likely), spaces, digits, punctuation, some non-ASCII
TEXT = st.one_of(
    st.text(alphabet=st.sampled_from("aeybcdfgkrstxzAEBCXZ     0123!.,_-"), max_size=120),
    st.text(alphabet=st.sampled_from("aebcdstxz ÄéßЖ字१"), max_size=60),
    st.text(max_size=40),
)


@settings(max_examples=600, deadline=None)
@given(TEXT)
def test_the_readings_are_their_definitions(text):
    assert lexicon.vowel_density(text) == vowel_density(text)
    assert lexicon.wordlike_share(text) == wordlike_share(text)
    assert lexicon.is_gibberish.__wrapped__(text) == is_gibberish(text)


def test_a_consonant_run_of_five_is_not_wordlike_and_four_is():
    assert lexicon.wordlike_share("strengths") == 0.0  # n-g-t-h-s
    assert lexicon.wordlike_share("strength") == 1.0
    assert lexicon.wordlike_share("xyz") == 1.0  # y is a vowel here
    assert lexicon.wordlike_share("brr ok") == 0.5
