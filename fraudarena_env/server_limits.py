"""What keeps one client of a shared server from costing the others anything: token buckets,
the ledger of what each client address holds, and the shape a message or an id may have.

Nothing here knows the protocol: each check returns why it refuses (a sentence the server puts
in its error reply) or None, and :mod:`fraudarena_env.server` picks the error code.

* :class:`TokenBucket`: ``rate`` tokens a second, at most ``burst`` saved up. The server keeps
  one per socket (every message takes a token) and one per client address for abandoning
  matches: a match that ends unfinished (reset spam: create, leave, repeat) spends a token of
  the address that created it, and an address whose bucket is empty may create no match until
  it refills. A client that plays its matches to the end never spends one.
* :class:`AddressLedger`: open sockets and live matches per client address, with caps. An
  address is the client's IP; IPv6 clients count by their /64 network, since one host usually
  holds a whole /64.
* :func:`nesting_refusal` and :func:`id_refusal`: the depth of a parsed JSON value, and what an
  id may hold (printable text of bounded length: no control characters, no lone surrogates).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from typing import Any

API_KEY_ENV = "FRAUDARENA_API_KEY"  # where `fraudarena serve` and the REST client find the key
MAX_NESTING = 32  # a seed client's deepest message (an audit report) is 5 levels deep
MAX_ID_LENGTH = 128


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; it starts full."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float | None = None):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic() if now is None else now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float | None = None) -> bool:
        """Spend a token if there is one."""
        self._refill(time.monotonic() if now is None else now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def spend(self, now: float | None = None) -> None:
        """Spend a token even when there is none: the debt (at most ``burst``) is paid back
        before the next :meth:`take` or :meth:`ready`."""
        self._refill(time.monotonic() if now is None else now)
        self.tokens = max(-float(self.burst), self.tokens - 1.0)

    def ready(self, now: float | None = None) -> bool:
        """Whether a token is there, without spending it."""
        self._refill(time.monotonic() if now is None else now)
        return self.tokens >= 1.0

    def wait(self, now: float | None = None) -> float:
        """Seconds until the next token."""
        self._refill(time.monotonic() if now is None else now)
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def full(self, now: float) -> bool:
        """Whether it will have refilled by ``now`` (it is left as it is)."""
        return self.tokens + max(0.0, now - self.stamp) * self.rate >= self.burst


class AddressBuckets:
    """A ``TokenBucket`` per client address (``rate`` a second, up to ``burst``), for the HTTP
    requests an address may make. At most ``capacity`` addresses are kept: the one unseen
    longest is forgotten first, and starts again with a full bucket."""

    def __init__(self, rate: float, burst: int, capacity: int = 10_000):
        self.rate, self.burst, self.capacity = rate, burst, capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, address: str, now: float | None = None) -> TokenBucket | None:
        """Spend one of ``address``'s tokens: None when there was one, else its bucket (whose
        ``wait`` says when there will be)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(address, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            while len(self._buckets) >= self.capacity:
                self._buckets.popitem(last=False)
        self._buckets[address] = bucket  # the most recently seen, last
        return None if bucket.take(now) else bucket

    def __len__(self) -> int:
        return len(self._buckets)


def address_key(host: str | None) -> str:
    """The key limits are counted under: the IP (an IPv4-mapped IPv6 address as IPv4), an IPv6
    address's /64 network, or the host string as given when it is not an IP."""
    if not host:
        return "local"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _Address:
    __slots__ = ("connections", "matches", "abandons")

    def __init__(self, abandons: TokenBucket):
        self.connections = 0
        self.matches = 0
        self.abandons = abandons


class AddressLedger:
    """Open sockets, live matches and the abandon bucket of each client address
    (``abandon_rate`` None: no bucket)."""

    def __init__(self, max_connections: int, max_connections_per_address: int,
                 max_matches_per_address: int, abandon_rate: float | None, abandon_burst: int):
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.max_matches_per_address = max_matches_per_address
        self.abandon_rate, self.abandon_burst = abandon_rate, abandon_burst
        self.connections = 0
        self._book: dict[str, _Address] = {}

    def _get(self, address: str) -> _Address:
        book = self._book.get(address)
        if book is None:
            book = self._book[address] = _Address(TokenBucket(self.abandon_rate or 1.0,
                                                              self.abandon_burst))
        return book

    def connect(self, address: str) -> str | None:
        """Count a new socket from ``address``, or say why it is refused (nothing counted)."""
        if self.connections >= self.max_connections:
            return (f"the server holds its maximum of {self.max_connections} connections; try "
                    "again later")
        book = self._get(address)
        if book.connections >= self.max_connections_per_address:
            return (f"your address already holds {book.connections} connections, the most one "
                    "address may; close one first")
        book.connections += 1
        self.connections += 1
        return None

    def disconnect(self, address: str) -> None:
        book = self._book.get(address)
        if book is not None and book.connections > 0:
            book.connections -= 1
            self.connections -= 1

    def creation_refusal(self, address: str, freeing: int = 0) -> tuple[str, str] | None:
        """None if ``address`` may create a match now (``freeing``: how many of its live
        matches the creation ends), else (``kind``, ``why``): ``kind`` ``"cap"`` (too many live
        matches) or ``"rate"`` (too many left unfinished lately). Call :meth:`created` once the
        match exists."""
        book = self._get(address)
        if book.matches - freeing >= self.max_matches_per_address:
            return "cap", (f"your address already has {book.matches} live matches, the most "
                           "one address may; finish or leave one first")
        if self.abandon_rate is not None and not book.abandons.ready():
            return "rate", (f"your address left matches unfinished faster than "
                            f"{self.abandon_rate:g} a second (burst {self.abandon_burst}); "
                            f"retry in {self.abandon_wait(address):.1f} s")
        return None

    def abandon_wait(self, address: str) -> float:
        """Seconds until ``address`` may create a match again, as far as its abandon bucket
        goes."""
        return self._get(address).abandons.wait() if self.abandon_rate is not None else 0.0

    def created(self, address: str) -> None:
        self._get(address).matches += 1

    def ended(self, address: str, abandoned: bool = False) -> None:
        """A match ``address`` created has ended (``abandoned``: unfinished)."""
        book = self._get(address)
        book.matches = max(0, book.matches - 1)
        if abandoned and self.abandon_rate is not None:
            book.abandons.spend()

    def prune(self, now: float | None = None) -> None:
        """Forget addresses that hold nothing and whose bucket is full again."""
        now = time.monotonic() if now is None else now
        for address in [a for a, b in self._book.items()
                        if not b.connections and not b.matches and b.abandons.full(now)]:
            del self._book[address]

    def __len__(self) -> int:
        return len(self._book)

    def held(self, address: str) -> tuple[int, int]:
        """(connections, live matches) of ``address``."""
        book = self._book.get(address)
        return (0, 0) if book is None else (book.connections, book.matches)


def too_deep(limit: int = MAX_NESTING) -> str:
    """The refusal of a message nested deeper than ``limit``."""
    return f"the message nests objects and arrays deeper than {limit} levels"


def nesting_refusal(raw: str | bytes, value: Any, limit: int = MAX_NESTING) -> str | None:
    """Why ``value`` (parsed from ``raw``) is refused for nesting deeper than ``limit``, or
    None. Iterative, so a deep value cannot exhaust the stack; a message with fewer brackets
    than ``limit`` is passed without a walk."""
    opened = (raw.count(b"[") + raw.count(b"{")) if isinstance(raw, bytes) else \
        (raw.count("[") + raw.count("{"))
    if opened <= limit:
        return None
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return too_deep(limit)
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return None


def has_lone_surrogate(value: Any) -> bool:
    """Whether a (shallow: see :func:`nesting_refusal`) JSON value holds a lone UTF-16
    surrogate, which is not text and cannot be encoded."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def id_refusal(name: str, value: Any, limit: int = MAX_ID_LENGTH) -> str | None:
    """Why ``value`` is not a valid id called ``name``: an id is a non-empty string of at most
    ``limit`` printable characters (no control or format characters, no lone surrogates, no
    separators but the space)."""
    if not isinstance(value, str) or not value or len(value) > limit:
        return f"{name} must be a non-empty string of at most {limit} characters"
    if not value.isprintable():
        return f"{name} must hold only printable characters (no control characters)"
    return None


__all__ = ["API_KEY_ENV", "MAX_ID_LENGTH", "MAX_NESTING", "AddressBuckets", "AddressLedger",
           "TokenBucket", "address_key",
           "has_lone_surrogate", "id_refusal", "nesting_refusal", "too_deep"]
