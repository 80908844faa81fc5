"""Lexical reading of ad text: risk phrases, trust phrases and gibberish measures.

The same scan serves three places: free-text proposals (how many visible risk markers the copy
carries), the investigator's tensor features (so LLM-written copy is encoded too), and Track B of
the audit (is this copy plausible at all).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from .catalog import INJECTION_WORDS, MINOR_WORDS, RISK_PHRASES, RISK_WORDS, TRUST_WORDS

_WORD = re.compile(r"[A-Za-z]+")
_GENERATOR_TOKEN = re.compile(r"\b(pmt|host|fp|cfg)_\d{4,}\b")
_VOWELS = set("aeiouyAEIOUY")
N_LEXICAL = 8
LEXICAL_NAMES = ("risk_markers", "trust_markers", "length", "exclamations", "uppercase",
                 "digits", "vowel_density", "wordlike")
LEXICAL_INDEX = {name: i for i, name in enumerate(LEXICAL_NAMES)}
LENGTH_SCALE = 400  # the "length" feature is min(len, LENGTH_SCALE) / LENGTH_SCALE
# copy reads as gibberish when it is shorter, or its vowels or word-like tokens are rarer
GIBBERISH_MIN_LENGTH = 20
GIBBERISH_MIN_VOWEL_DENSITY = 0.28
GIBBERISH_MIN_WORDLIKE = 0.75


@lru_cache(maxsize=1 << 14)
def count_risk_markers(text: str) -> int:
    low = text.lower()
    return sum(p in low for p in RISK_PHRASES) + sum(w in low for w in RISK_WORDS)


@lru_cache(maxsize=1 << 14)
def count_trust_markers(text: str) -> int:
    low = text.lower()
    return sum(w in low for w in TRUST_WORDS)


def vowel_density(text: str) -> float:
    """The share of vowels (``aeiouy``, either case) among the letters (``str.isalpha``)."""
    if text.isascii():  # the letters are A-Z and a-z: counted in C, not a character at a time
        letters = _count(text, _ASCII_LETTERS)
        return _count(text, _VOWEL_LETTERS) / letters if letters else 0.0
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(c in _VOWELS for c in letters) / len(letters)


def wordlike_share(text: str) -> float:
    """The share of word-like tokens (runs of ASCII letters): two letters or fewer, or a vowel
    and no run of five consonants."""
    words = _WORD.findall(text)
    if not words:
        return 0.0
    return sum(len(w) <= 2 or _UNWORDLIKE.search(w) is None for w in words) / len(words)


_ASCII_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VOWEL_LETTERS = "aeiouyAEIOUY"
_CONSONANT = "[B-DF-HJ-NP-TV-XZb-df-hj-np-tv-xz]"
# in a token of letters: five consonants in a row, or no vowel at all
_UNWORDLIKE = re.compile(f"{_CONSONANT}{{5}}|^{_CONSONANT}+$")


def _count(text: str, chars: str) -> int:
    """How many characters of ``text`` are in ``chars``."""
    return sum(map(text.count, chars))


@lru_cache(maxsize=1 << 16)
def lexical_features(text: str) -> np.ndarray:
    """A fixed-length float32 reading of a text, each entry scaled to about [0, 1].

    Memoised (a pure function of the text; template copy repeats across matches). The returned
    array is shared: copy it before writing.
    """
    n = max(len(text), 1)
    return np.asarray([
        min(count_risk_markers(text), 6) / 6.0,
        min(count_trust_markers(text), 3) / 3.0,
        min(len(text), LENGTH_SCALE) / LENGTH_SCALE,
        min(text.count("!"), 5) / 5.0,
        sum(c.isupper() for c in text) / n,
        sum(c.isdigit() for c in text) / n,
        vowel_density(text),
        wordlike_share(text),
    ], dtype=np.float32)


@lru_cache(maxsize=1 << 14)
def is_gibberish(text: str) -> bool:
    if len(text.strip()) < GIBBERISH_MIN_LENGTH:
        return True
    letters = _count(text, _ASCII_LETTERS) if text.isascii() else sum(
        c.isalpha() for c in text)
    if letters >= GIBBERISH_MIN_LENGTH and vowel_density(text) < GIBBERISH_MIN_VOWEL_DENSITY:
        return True
    return wordlike_share(text) < GIBBERISH_MIN_WORDLIKE


_LENGTH, _VOWEL_DENSITY, _WORDLIKE = (LEXICAL_INDEX[n] for n in ("length", "vowel_density",
                                                                "wordlike"))


def reads_as_gibberish(lexical: np.ndarray) -> np.ndarray:
    """The gibberish test as a policy can make it from the lexical features alone (rows of
    ``lexical_features``, last axis ``LEXICAL_NAMES``): short copy, few vowels or few word-like
    tokens. ``is_gibberish`` reads the text itself."""
    return ((lexical[..., _LENGTH] < GIBBERISH_MIN_LENGTH / LENGTH_SCALE)
            | (lexical[..., _VOWEL_DENSITY] < GIBBERISH_MIN_VOWEL_DENSITY)
            | (lexical[..., _WORDLIKE] < GIBBERISH_MIN_WORDLIKE))


@lru_cache(maxsize=1 << 14)
def mentions_minors(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in MINOR_WORDS)


_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f]")  # below 32, but for tab and newline


@lru_cache(maxsize=1 << 16)
def has_injection_or_generator_token(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in INJECTION_WORDS) or bool(_GENERATOR_TOKEN.search(low)) or \
        _CONTROL_CHARACTER.search(text) is not None


@lru_cache(maxsize=1 << 14)
def shingles(text: str, n: int = 4) -> frozenset[tuple[str, ...]]:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < n:
        return frozenset({tuple(words)}) if words else frozenset()
    return frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    shared = len(a & b)
    return shared / max(len(a) + len(b) - shared, 1)  # the union's size, without building it
