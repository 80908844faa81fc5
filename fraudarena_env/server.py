"""FraudArena over WebSockets, for remote and untrusted agents: three role sockets that share one
referee per match, a small REST API, and an archive of every finished match.

Needs the ``server`` extra (``pip install -e ".[server]"``). Start it with ``fraudarena serve``
(or ``python -m fraudarena_env.server``); it binds 127.0.0.1 unless told otherwise.
:mod:`fraudarena_env.client` holds the clients.

Routes

* ``/ws/fraudster``, ``/ws/investigator``, ``/ws/auditor``: one socket speaks for one role.
* ``GET /api/v1/matches``: archived matches (live ones too with ``--diagnostics``);
  ``POST /api/v1/matches`` (body: reset data) creates a match and returns its id and the three
  seat tokens; both need the API key unless the server runs with ``--open-api``.
  ``GET /api/v1/matches/{id}``: a live match's public summary, or an archived record (for the
  API key, or one of the match's seat tokens in ``X-Seat-Token``); ``DELETE
  /api/v1/matches/{id}`` ends and archives a live match (the API key, or the seat token of the
  role whose socket created it). ``GET /api/v1/matches/{id}/replay.html``: an archived match as
  one self-contained page (:mod:`fraudarena_env.replay_page`), for whoever may read its record.
  The API key goes in ``X-API-Key`` (or ``Authorization: Bearer KEY``). An archived record the
  store cannot read back (damaged: see :mod:`fraudarena_env.archive`) is answered 410
  ``damaged_record``, naming the match and quoting nothing of it, on both ``GET`` routes (and a
  record that no longer plays again, on the page's, for a caller who may read it); the listing
  marks a summary it cannot read ``damaged`` (null for the others) and lists the others.
* ``GET /matches``: live match ids, only with ``--diagnostics`` (else just their number).
* ``GET /healthz``: liveness, occupancy, and what the store holds (``archived``, ``journaled``,
  ``unarchived``) or last refused (``storage_error``; ``status`` is then ``degraded``).

Messages: the lineage's wire format. JSON text frames (or binary frames of UTF-8 JSON) of the
form ``{"type": T, "data": {...}}``; an absent or null ``data`` is ``{}``. T is one of

* ``reset``: data may hold ``seed``, ``episode_id``, ``task_id``, ``max_rounds``,
  ``max_proposals``, ``max_fraudster_actions_per_turn``, ``max_investigator_actions_per_turn``,
  ``allowed_categories`` (bounded; nulls and unknown keys are ignored), ``obs_format``,
  ``illegal_action`` and ``opponents`` (below). It creates a match and gives this socket its
  role's seat;
* ``join``: data holds ``match_id``, and ``seat_token`` to take back a seat already held (a
  reconnect), and optionally ``obs_format``;
* ``step``: the role's action JSON (``metadata`` is accepted and ignored), or
  ``{"action_index": k}`` (the tensor face);
* ``obs`` (data may hold ``obs_format``), ``state``, ``close`` (no reply; the socket closes).

Replies, one per message, in order:

* ``{"type": "observation", "data": {...}}``: the role's observation JSON plus ``match_id``,
  ``role``, ``phase``, ``round_number``, ``max_rounds`` and ``rounds_remaining`` (reset and join
  replies add ``seat_token``). ``obs_format`` ``"tensor"`` adds ``observation`` and
  ``action_mask`` as lists; ``"tensor_sparse"`` sends only those two, as base64 sparse vectors
  (see :func:`sparse_json`), with the header fields, ``done`` and ``reward`` (the fast face).
* ``{"type": "state", "data": {...}}``: ``RefereeState`` JSON as this role may see it (see
  :mod:`fraudarena_env.faces.views`; everything once the match is done).
* ``{"type": "error", "data": {"message", "code"}}``, code one of ``ERROR_CODES``. A refused
  message changes nothing, and its reply quotes at most a short excerpt of it. A
  ``rate_limited`` reply adds ``retry_after`` (seconds): the message was not read, and may be
  sent again then.

Seats and ids. Match ids and seat tokens come from ``secrets``. The first socket to hold a
role's seat keeps it; another socket gets ``role_taken`` unless it presents the seat token from
the holder's reset or join reply, which moves the seat to it (the old socket's next message gets
``no_match``). A seed the server draws is never shown before the match is done.

Limits (see :class:`ServerConfig` and :mod:`fraudarena_env.server_limits`); no client's messages
may cost another anything:

* Matches: at most ``max_matches`` live, ``max_matches_per_address`` created from one client
  address and ``max_matches_per_connection`` by one socket (``capacity_reached``). Reset spam:
  an address whose matches end unfinished (left, swept or deleted before the end) faster than
  ``abandon_rate`` a second (burst ``abandon_burst``) may create no match until that rate
  allows (``rate_limited``); matches played to the end cost nothing, and so does one swept
  idle on another role's turn. The API key creates without per-address limits.
  One role's actions may add at most ``MAX_TEXT_CHARS`` characters of free text (copy, blurbs,
  rationales, notes; an edit also counts the ad's text its log row repeats) to a match; past
  that such an action is ``execution_error``, and actions without free text still play.
* Lifetimes: a match nobody has moved in ``start_grace`` seconds after its creation, a match no
  socket has held a seat of for ``reconnect_grace`` seconds (the time a dropped player has to
  come back with its seat token), and a match nobody has moved in for ``idle_timeout`` seconds
  are archived and dropped by a sweeper (polls and joins are no moves, so a player who holds its
  seat and never moves stalls the others no longer than that). A match a socket created by
  ``reset`` ends at once when its last socket leaves before anyone moved, and when its creator
  resets again with nobody else attached.
* Sockets: at most ``max_connections`` in all and ``max_connections_per_address`` from one
  address (the socket gets ``capacity_reached`` and is closed); a socket that holds no seat for
  ``lobby_timeout`` seconds is closed. Each socket's messages spend tokens of its own bucket
  (``rate_limit`` a second, burst ``rate_burst``); a message without a token is answered
  ``rate_limited`` and not read further. The server yields to the other sockets after every
  message, so one socket's backlog never delays another's turn, and reads a socket no further
  while its replies are backed up, pings included (:class:`BackpressuredWebSocket`).
* HTTP: each client address's requests, WebSocket handshakes included, spend its own bucket
  (``http_rate_limit`` a second, burst ``http_rate_burst``; the API key's are not counted); a
  request without a token is answered 429 ``rate_limited`` and not handled, a handshake
  ``rate_limited`` and closed (so an address that opens and drops sockets in a loop spends no
  more of the server than one that polls). A replay page is rendered once per archived match.
* Parsing: frames over ``max_message_bytes`` (``message_too_large``), JSON nested deeper than
  ``MAX_NESTING`` levels and ids (match ids, episode ids) that are not short printable text
  (``validation_error``); the REST API answers the same with HTTP 4xx.

Seeds. A client may choose a match's seed unless the server runs with ``--no-client-seeds``
(then a reset naming one is refused); every reset and join reply carries
``seed_chosen_by_client``, so a player can tell whether the match's creator may know its labels.

Illegal text actions. A text action the rules refuse (a verdict on ``__noop__``, a flag past the
auditor's cap) is answered as the lineage's rules answered it: charged and used up, at most
``MAX_PENALTIES`` times a match; a reset with ``"illegal_action": "raise"`` refuses them instead
(``execution_error``, the match unchanged). An ``action_index`` step is always held to the mask.

Opponents. A reset's ``opponents``, ``{role: SPEC}`` (not the socket's own role), seats the
server's own policies: any SPEC ``fraudarena evaluate`` takes, a checkpoint only by its file name
in ``checkpoint_dir``. They are seeded with the match seed, act on their tensor face when they
have one, and move before the server answers, so one remote player can play a match alone.
Their moves are made one per turn of the event loop, each spending a token of the asking socket's
rate limit (see ``Handler.complete``).

Store. Finished and evicted matches are archived, and live ones journaled action by action
before each is acknowledged, in ``data_dir`` (see :mod:`fraudarena_env.archive` and
:mod:`fraudarena_env.journal`); a restart resumes every journaled match, and its players take
their seats back with their tokens. A write the store refuses is answered with
``storage_error`` and changes nothing. ``fraudarena replay`` re-renders an archived match.

Only the event loop touches the pool, and no handler awaits between reading a match and changing
it, so each message is applied atomically.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import contextlib
import gc
import hmac
import json
import logging
import math
import os
import secrets
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.requests import HTTPConnection
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .archive import (
    ILLEGAL_ACTION_MODES,
    Archive,
    DamagedRecord,
    StorageError,
    default_data_dir,
    play_action,
    state_as_archived,
)
from .arena import MAX_MATCH_STEPS
from .faces.encoding import N_ACTIONS, Observer, index_refusal
from .faces.views import sealed_state
from .journal import Journal, JournaledMatch, token_hash, token_matches
from .models import ACTION_MODELS, validation_message
from .referee import Referee
from .rules.catalog import MATCH_KNOBS, PHASE_ROLE, ROLES
from .rules.errors import IllegalActionError
from .server_limits import (
    API_KEY_ENV,
    AddressBuckets,
    AddressLedger,
    TokenBucket,
    address_key,
    has_lone_surrogate,
    id_refusal,
    nesting_refusal,
    too_deep,
)

logger = logging.getLogger(__name__)

RESET_KEYS = ("seed", "episode_id", "task_id", *MATCH_KNOBS)
OBS_FORMATS = ("json", "tensor", "tensor_sparse")
assert 2**16 > max(N_ACTIONS.values())  # sparse indices are uint16
MESSAGE_TYPES = ("reset", "join", "step", "obs", "state", "close")
ERROR_CODES = ("invalid_json", "reset_error", "missing_match_id", "unknown_match", "no_match",
               "validation_error", "phase_violation", "execution_error", "unknown_type",
               "fatal_error", "role_taken", "capacity_reached", "message_too_large",
               "storage_error", "rate_limited")
# The REST API answers with these too: no or a wrong API key, credentials that do not grant what
# was asked, and an archived record the store holds but cannot read back (410).
HTTP_ERROR_CODES = (*ERROR_CODES, "unauthorized", "forbidden", "damaged_record")
MAX_ID_LENGTH = 128
# How a match answers a text action its rules refuse (reset's ``illegal_action``, one of
# ``archive.ILLEGAL_ACTION_MODES``): ``penalize`` (the default, as the lineage's rules did:
# charged, the action used) or ``raise`` (refused with ``execution_error``, the match unchanged).
# An ``action_index`` step is always checked against the mask it came from.
MAX_PENALTIES = 256  # penalized actions per match; then refused (the auditor has no turn end)
# Free text one role's text actions may add to a match: room for every proposal the knobs allow
# at full length. Past it such an action is refused; one without free text still plays.
# Unbounded, repeated edits grew one match's logs, and every state and auditor reply, by megabytes.
MAX_TEXT_CHARS = 256 * 1024
FREE_TEXT = ("ad_copy", "landing_page_blurb", "targeting_summary", "new_ad_copy",
             "new_landing_page_blurb", "rationale", "link_reason", "note")
AD_TEXT_CHARS = 2000 + 2000 + 512  # an ad's copy, blurb and targeting, which an edit's row repeats
REPLAY_PAGES_KEPT = 32  # rendered replay pages kept (an archived match's page never changes)
MAX_SPEC_CHARS = 256  # an opponent SPEC
MAX_ERROR_CHARS = 400  # an error reply's message never runs longer
EXCERPT = 40  # characters of a client's input an error may quote


class BackpressuredWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, which stops reading a socket while what the server
    wrote to it is backed up (past the transport's high-water mark, the peer not reading).

    uvicorn answers a ping with a pong at once, outside the app and its rate limit, and keeps
    reading: a client that sent pings and never read its replies grew the server's write buffer
    without end (400 MiB of pings, 390 MiB of the server's memory, for every other client to
    lose when it ran out). Its data messages already wait: the app reads the next only after its
    reply was written."""

    def handle_ping(self) -> None:
        super().handle_ping()
        if not self.writable.is_set():  # the pong went past the high-water mark
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.read_paused:  # (uvicorn's own pause, while the app has a message waiting)
            self.transport.resume_reading()


# How uvicorn should run the app: no per-message compression (it cost more CPU than the rest of
# a step: observations are small and mostly fresh numbers), and the sans-I/O websockets
# protocol, held to the pace its client reads at. uvicorn closes frames beyond ws_max_size;
# below it, an oversized message gets a ``message_too_large`` reply.
UVICORN_OPTIONS = {"ws": BackpressuredWebSocket, "ws_per_message_deflate": False}


@dataclass
class ServerConfig:
    max_matches: int = 256
    max_matches_per_connection: int = 8
    max_matches_per_address: int = 16
    max_connections: int = 1024
    max_connections_per_address: int = 32
    idle_timeout: float | None = 900.0  # seconds; None: never sweep
    start_grace: float | None = 120.0  # seconds for a new match's first move; None: forever
    reconnect_grace: float | None = 120.0  # seconds a match may have no seat held; None: forever
    lobby_timeout: float | None = 60.0  # seconds a socket may hold no seat; None: forever
    sweep_interval: float = 5.0
    max_message_bytes: int = 64 * 1024
    rate_limit: float | None = 200.0  # messages a second per socket; None: no limit
    rate_burst: int = 1000  # a seed client's whole match fits in it
    abandon_rate: float | None = 1.0  # unfinished matches a second per address; None: no limit
    abandon_burst: int = 30
    http_rate_limit: float | None = 20.0  # HTTP requests a second per address; None: no limit
    http_rate_burst: int = 100
    api_key: str | None = None  # REST creation and archive reads; None: no key opens them
    open_api: bool = False  # REST creation and archive reads without the key
    client_seeds: bool = True  # False: the server draws every seed and refuses a client's
    # The store: archived matches and the journal of live ones (fraudarena_env.archive). None:
    # in memory, nothing survives the process (``fraudarena serve`` defaults to
    # ``archive.default_data_dir()``).
    data_dir: str | None = None
    checkpoint_dir: str | None = None  # opponents may name checkpoint files in it
    diagnostics: bool = False  # list live match ids on GET /matches and /api/v1/matches
    observer_cache: int = 3 * 128  # tensor-face observers kept (three per recent match)
    # Seconds between the server's own full garbage collections; Python's automatic collector
    # is off while the app runs. Its collections found no garbage (the game state holds no
    # reference cycles) but walked every young object of the live matches: pauses of 5-15 ms,
    # about twice a second under load, that stalled every socket. None: leave it alone.
    collect_interval: float | None = 60.0

    def __post_init__(self):
        for name in ("max_matches", "max_matches_per_connection", "max_matches_per_address",
                     "max_connections", "max_connections_per_address", "max_message_bytes",
                     "rate_burst", "abandon_burst", "http_rate_burst", "observer_cache"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("idle_timeout", "start_grace", "reconnect_grace", "lobby_timeout"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value!r}")
        if not self.sweep_interval > 0:
            raise ValueError(f"sweep_interval must be > 0, got {self.sweep_interval!r}")
        for name in ("rate_limit", "abandon_rate", "http_rate_limit", "collect_interval"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        if self.api_key is not None and (len(self.api_key) < 16 or
                                         id_refusal("api_key", self.api_key, 512)):
            raise ValueError("api_key must be 16 to 512 printable characters")
        # A mistyped directory would otherwise surface only as every reset naming a
        # checkpoint being refused, with the server's own path kept out of the reply.
        if self.checkpoint_dir is not None and not Path(self.checkpoint_dir).is_dir():
            raise ValueError(f"checkpoint_dir {self.checkpoint_dir!r} is not a directory: give "
                             "the directory that holds the checkpoints opponents may name")

    def ledger(self) -> AddressLedger:
        """A fresh ledger of what each client address holds, under this config's caps."""
        return AddressLedger(self.max_connections, self.max_connections_per_address,
                             self.max_matches_per_address, self.abandon_rate,
                             self.abandon_burst)


class ProtocolError(Exception):
    """A request the server answers with an error reply (``code`` is one of ERROR_CODES;
    ``retry_after``: seconds, for ``rate_limited``)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = {} if retry_after is None else retry_field(retry_after)


def retry_field(seconds: float) -> dict[str, float]:
    """What a ``rate_limited`` reply adds: when the refused message may be sent again."""
    return {"retry_after": round(seconds, 4)}


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """A short repr of client input, safe to quote in a reply."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ============================================================================ the pool
class Seat:
    """One role's place in a match: the hash of its token (the token itself is handed out once
    and never kept), the socket holding it (if any), or the server's policy playing it."""

    __slots__ = ("token_hash", "holder", "bot")

    def __init__(self):
        self.token_hash: str | None = None
        self.holder: Session | None = None
        self.bot: Bot | None = None

    @property
    def issued(self) -> bool:
        return self.token_hash is not None

    def accepts(self, token: Any) -> bool:
        return token_matches(token, self.token_hash)


class Bot:
    """A seat the server plays: a policy built from a SPEC, on its tensor face when it has one
    (as ``fraudarena evaluate`` plays it)."""

    __slots__ = ("spec", "policy", "tensor")

    def __init__(self, spec: str, policy: Any):
        self.spec, self.policy = spec, policy
        self.tensor = policy.has_tensor_face()


class MatchEntry:
    """One live match: its referee, its seats, the actions applied so far, and who made it
    (``address``: the client address it counts against, None when the API key made it;
    ``creator_role``: the role whose socket reset it, None when made over REST)."""

    def __init__(self, referee: Referee, reset_args: dict[str, Any], episode_id: str | None,
                 address: str | None = None, creator_role: str | None = None,
                 client_seed: bool = False, illegal_action: str = "penalize",
                 opponents: dict[str, str] | None = None, match_id: str | None = None):
        self.match_id = match_id or "m_" + secrets.token_urlsafe(16)
        self.episode_id = episode_id or self.match_id
        self.referee = referee
        self.reset_args = reset_args
        self.address = address
        self.creator_role = creator_role
        self.client_seed = client_seed
        self.illegal_action = illegal_action
        self.opponents = dict(opponents or {})  # role -> SPEC, the seats the server plays
        self.seats = {role: Seat() for role in ROLES}
        self.actions: list[dict[str, Any]] = []
        self.penalties = 0
        self.text = dict.fromkeys(ROLES, 0)  # characters of free text each role's actions added
        self.created_at = self.last_active = time.monotonic()
        self.unheld_since: float | None = None  # when its last socket left it
        self.closed: str | None = None  # why it left the pool
        self.archived = False

    @property
    def connected_roles(self) -> list[str]:
        return [r for r in ROLES if self.seats[r].holder is not None]

    @property
    def lenient(self) -> bool:
        return self.illegal_action == "penalize"

    def setup(self) -> dict[str, Any]:
        """What the journal needs, with the actions, to build this match again."""
        return {"episode_id": self.episode_id, "reset": self.reset_args,
                "illegal_action": self.illegal_action, "opponents": self.opponents,
                "address": self.address, "creator_role": self.creator_role,
                "client_seed": self.client_seed}

    def touch(self) -> None:
        """A move was made: the idle clock starts again (polls, joins and leaves do not start
        it, so a player who holds its seat and never moves cannot keep a match alive)."""
        self.last_active = time.monotonic()

    def summary(self) -> dict[str, Any]:
        """What anyone holding the id may know."""
        ref = self.referee
        return {"match_id": self.match_id, "task_id": ref.task.task_id, "phase": ref.phase,
                "round_number": ref.round_number, "max_rounds": ref.max_rounds,
                "done": ref.done, "step_count": ref.step_count,
                "connected_roles": self.connected_roles,
                "seed_chosen_by_client": self.client_seed, "live": True}

    def record(self, reason: str) -> dict[str, Any]:
        record = {"match_id": self.match_id, "episode_id": self.episode_id, "reason": reason,
                  "archived_at": time.time(), "reset": self.reset_args,
                  "illegal_action": self.illegal_action, "opponents": self.opponents,
                  "actions": self.actions, "seed_chosen_by_client": self.client_seed,
                  # who may read it back: the holders of its seat tokens (only digests kept)
                  "seat_digests": {role: seat.token_hash for role, seat in self.seats.items()}}
        record["state"] = state_as_archived(self.referee, record)
        return record


def resumed_entry(match: JournaledMatch) -> MatchEntry:
    """A journaled match's entry, its seats' token hashes in place, before its actions are
    played again; ValueError when its setup or seats are not what the server journals (a
    journal edited by hand, or damaged), so one bad match cannot keep the others from
    resuming."""
    setup, where = match.setup, f"the journal of match {match.match_id}"
    reset, opponents = setup.get("reset"), setup.get("opponents", {})
    if not isinstance(reset, dict) or not isinstance(setup.get("episode_id"), str):
        raise ValueError(f"{where} has no reset data or episode id")
    if unknown := sorted(set(reset) - set(RESET_KEYS)):  # (the referee would take them too)
        raise ValueError(f"{where} resets with what no client may set: {unknown[:5]}")
    if setup.get("illegal_action") not in ILLEGAL_ACTION_MODES:
        raise ValueError(f"{where} has no illegal_action mode")
    if not isinstance(opponents, dict) or not all(
            r in ROLES and isinstance(spec, str) for r, spec in opponents.items()):
        raise ValueError(f"{where} has opponents that are not {{role: SPEC}}")
    if not isinstance(setup.get("address"), (str, type(None))) or \
            setup.get("creator_role") not in (*ROLES, None):
        raise ValueError(f"{where} has a creator that is not an address and a role")
    if not all(r in ROLES and isinstance(d, str) for r, d in match.seats.items()):
        raise ValueError(f"{where} has seats of no role")
    entry = MatchEntry(Referee(), reset, setup["episode_id"], setup.get("address"),
                       setup.get("creator_role"), setup.get("client_seed") is True,
                       setup["illegal_action"], opponents, match.match_id)
    for role, digest in match.seats.items():
        entry.seats[role].token_hash = digest
    entry.unheld_since = time.monotonic()  # its players have reconnect_grace to return
    return entry


class ObserverCache:
    """Tensor-face observers for the most recently observed (match, role) pairs.

    An observer follows one referee incrementally and rebuilds itself from the event log when
    handed another, so observers can be shared: the recently active matches keep theirs, an
    idle match holds none, and memory stays bounded however many matches are live."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._lru: OrderedDict[tuple[str, str], Observer] = OrderedDict()
        self._spare: dict[str, list[Observer]] = {role: [] for role in ROLES}

    def get(self, match_id: str, role: str) -> Observer:
        key = (match_id, role)
        obs = self._lru.get(key)
        if obs is not None:
            self._lru.move_to_end(key)
            return obs
        if self._spare[role]:
            obs = self._spare[role].pop()
        elif len(self._lru) >= self.capacity:
            obs = self._reuse(role)
        else:
            obs = Observer(role)
        self._lru[key] = obs
        return obs

    def _reuse(self, role: str) -> Observer:
        for key in self._lru:  # the least recently used observer of this role
            if key[1] == role:
                return self._lru.pop(key)
        self._lru.popitem(last=False)
        return Observer(role)

    def forget(self, match_id: str) -> None:
        for role in ROLES:
            obs = self._lru.pop((match_id, role), None)
            if obs is not None:
                self._spare[role].append(obs)


class MatchPool:
    """The live matches of one app, keyed by match id, and the archive of the others."""

    def __init__(self, config: ServerConfig, archive: Archive):
        self.config = config
        self.archive = archive
        self.journal = Journal(archive.store)
        self.entries: dict[str, MatchEntry] = {}
        self.observers = ObserverCache(config.observer_cache)
        self.ledger = config.ledger()
        # Matches out of the pool whose record the store refused (a full disk): retried by the
        # sweeper; their journal keeps them meanwhile.
        self.unarchived: dict[str, tuple[MatchEntry, str]] = {}
        self._factories: dict[tuple[str, str], Any] = {}  # (role, SPEC) -> seed -> policy

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, match_id: str) -> MatchEntry | None:
        return self.entries.get(match_id)

    def create(self, data: dict[str, Any], address: str | None = None,
               creator_role: str | None = None, replacing: MatchEntry | None = None
               ) -> MatchEntry:
        """A new match from reset data, journaled, or ProtocolError / StorageError (and nothing
        created). ``address``: the client address it counts against (None: the API key's,
        unlimited); ``creator_role``: the role of the socket making it; ``replacing``: a match
        the caller drops once this one exists (it frees its place)."""
        kwargs = {k: data[k] for k in RESET_KEYS if data.get(k) is not None}
        illegal_action = data.get("illegal_action")
        if illegal_action is None:
            illegal_action = ILLEGAL_ACTION_MODES[0]
        elif illegal_action not in ILLEGAL_ACTION_MODES:
            raise ProtocolError("reset_error", f"illegal_action must be one of "
                                f"{list(ILLEGAL_ACTION_MODES)}, got {excerpt(illegal_action)}")
        opponents = self._opponents(data.get("opponents"), creator_role)
        episode_id = kwargs.pop("episode_id", None)
        if episode_id is not None and (why := id_refusal("episode_id", episode_id)):
            raise ProtocolError("reset_error", f"{why}, got {excerpt(episode_id)}")
        client_seed = kwargs.get("seed") is not None
        if client_seed and not self.config.client_seeds:
            raise ProtocolError("reset_error", "this server draws every match's seed "
                                "(--no-client-seeds): leave seed out")
        spare = replacing is not None and self.entries.get(replacing.match_id) is replacing
        if len(self.entries) - spare >= self.config.max_matches:
            self.sweep()
        if len(self.entries) - spare >= self.config.max_matches:
            raise ProtocolError("capacity_reached", f"the server is full ({len(self.entries)} "
                                "live matches); finish or leave one, or try again later")
        if address is not None:
            refusal = self.ledger.creation_refusal(address, int(spare and
                                                                replacing.address == address))
            if refusal is not None:
                kind, why = refusal
                if kind == "cap":
                    raise ProtocolError("capacity_reached", why)
                raise ProtocolError("rate_limited", why, self.ledger.abandon_wait(address))
        if not client_seed:  # drawn here, so the archive can replay the match
            kwargs["seed"] = secrets.randbits(63)
        referee = Referee()
        try:
            referee.reset_match(**kwargs)
        except (ValueError, TypeError) as exc:
            raise ProtocolError("reset_error", f"could not start the match: {exc}") from None
        entry = MatchEntry(referee, kwargs, episode_id, address, creator_role, client_seed,
                           illegal_action, opponents)
        self._seat_bots(entry)
        self.journal.create(entry.match_id, entry.setup(), time.time())
        self.entries[entry.match_id] = entry
        if address is not None:
            self.ledger.created(address)
        logger.info("match %s created (%d live)", entry.match_id, len(self.entries))
        return entry

    # ------------------------------------------------------------------ the server's players
    def _opponents(self, wanted: Any, role: str | None) -> dict[str, str]:
        """Reset's ``opponents``: ``{role: SPEC}`` for seats the server plays, each SPEC one
        ``fraudarena evaluate`` takes (a policy name, or a checkpoint in the operator's
        ``checkpoint_dir``). Its factory is built (a checkpoint loaded) here, once."""
        if wanted is None:
            return {}
        if not isinstance(wanted, dict):
            raise ProtocolError("reset_error", "opponents must be an object {role: SPEC}, got "
                                f"{excerpt(wanted)}")
        open_roles = [r for r in ROLES if r != role]
        out = {}
        for seat, spec in wanted.items():
            if seat not in open_roles:
                raise ProtocolError("reset_error", f"opponents may name {open_roles} (not "
                                    f"the resetting socket's own role), got {excerpt(seat)}")
            if not isinstance(spec, str) or not spec or len(spec) > MAX_SPEC_CHARS or \
                    not spec.isprintable():
                raise ProtocolError("reset_error", f"the {seat} opponent must be a SPEC string "
                                    f"of at most {MAX_SPEC_CHARS} printable characters, got "
                                    f"{excerpt(spec)}")
            self._factory(seat, spec)
            out[seat] = spec
        if len(out) == len(ROLES):
            raise ProtocolError("reset_error", "opponents may not name all three roles: a match "
                                "needs one remote player")
        return out

    def _factory(self, role: str, spec: str):
        key = (role, spec)
        factory = self._factories.get(key)
        if factory is not None:
            return factory
        from . import cli  # the SPECs of `fraudarena evaluate`, and checkpoint loading

        names = cli.evaluate_names(role)
        if spec in names:
            factory = cli.policy_factory(cli.PolicySpec(role, spec))
        else:
            root = self.config.checkpoint_dir
            if root is None:
                raise ProtocolError("reset_error", f"unknown {role} opponent {excerpt(spec)}: "
                                    f"use one of {', '.join(names)} (this server has no "
                                    "checkpoint directory)")
            root = Path(root).resolve()
            path = (root / spec).resolve()
            if root not in path.parents:
                raise ProtocolError("reset_error", f"{role} checkpoint {excerpt(spec)} must be a "
                                    "file name inside the server's checkpoint directory")
            try:
                parsed = cli.parse_policy_spec(role, str(path))
                # Kept by the file, not by the SPEC's spelling ("x", "./x.zip", ...), which a
                # client may vary without end.
                key = (role, str(parsed.path))
                factory = self._factories.get(key) or cli.policy_factory(parsed)
            except (argparse.ArgumentTypeError, cli.CheckpointError, OSError):  # OSError: a
                # name the file system cannot hold (longer than 255 bytes, say)
                raise ProtocolError("reset_error", f"no playable {role} checkpoint "
                                    f"{excerpt(spec)} in the server's checkpoint directory"
                                    ) from None
        self._factories[key] = factory
        return factory

    def _seat_bots(self, entry: MatchEntry) -> None:
        """Fresh policies on the seats the server plays, seeded with the match seed (as
        ``fraudarena evaluate`` seeds them)."""
        for role, spec in entry.opponents.items():
            policy = self._factory(role, spec)(entry.reset_args["seed"])
            bind = getattr(policy, "bind", None)  # a policy that reads the referee (the oracle)
            if bind is not None:
                bind(entry.referee)
            entry.seats[role].bot = Bot(spec, policy)

    def _bot_action(self, entry: MatchEntry, role: str, bot: Bot) -> dict[str, Any]:
        ref = entry.referee
        if bot.tensor:
            vector, mask = self.observers.get(entry.match_id, role).observe(ref)
            return {"action_index": int(bot.policy.act_tensor(vector, mask))}
        model = bot.policy.act_model(getattr(ref, f"build_{role}_observation")())
        return model.model_dump(mode="json", exclude_none=True, exclude={"metadata"})

    def bot_to_move(self, entry: MatchEntry) -> Bot | None:
        """The server's policy whose turn it is in a live match, if it is one's."""
        role = PHASE_ROLE.get(entry.referee.phase)
        if role is None or self.entries.get(entry.match_id) is not entry:
            return None
        return entry.seats[role].bot

    def bot_move(self, entry: MatchEntry) -> bool:
        """One move of the server's seat that is to act, journaled like a remote one (or
        StorageError, the match unchanged); False when no server seat is to act."""
        bot = self.bot_to_move(entry)
        if bot is None:
            return False
        if len(entry.actions) > MAX_MATCH_STEPS:
            raise RuntimeError(f"match {entry.match_id} did not end in {MAX_MATCH_STEPS} steps")
        role = PHASE_ROLE[entry.referee.phase]
        self.step(entry, role, self._bot_action(entry, role, bot))
        return True

    def run_bots(self, entry: MatchEntry) -> None:
        """Play the server's seats until a remote role is to act or the match is over, at once
        (the server's own callers, off its event loop, use :meth:`play_bots`)."""
        while self.bot_move(entry):
            pass

    async def play_bots(self, entry: MatchEntry, bucket: TokenBucket | None = None) -> None:
        """``run_bots``, one move per turn of the event loop, so no other client waits on more
        than one move (a checkpoint's can take milliseconds, a whole match of them seconds).
        Each move spends a token of ``bucket`` (the asker's rate limit), waiting for one if need
        be: the server's moves made for a client count as its messages."""
        while self.bot_to_move(entry) is not None:
            while bucket is not None and not bucket.take():
                await asyncio.sleep(bucket.wait())
            self.bot_move(entry)
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ actions
    def apply(self, entry: MatchEntry, role: str, action: dict[str, Any], model=None) -> None:
        """Apply one action (``model``: the validated text action, when there is one) and add it
        to the match's actions. Raises ProtocolError, and leaves the match untouched, when it is
        refused. Not journaled: see :meth:`step`."""
        index = action.get("action_index")
        text = free_text(action)
        if text and entry.text[role] + text > MAX_TEXT_CHARS:
            raise ProtocolError("execution_error", f"the {role}'s actions in this match already "
                                f"hold {entry.text[role]} characters of free text and this one adds"
                                f" {text} (an edit counts the ad's text it repeats), past the "
                                f"{MAX_TEXT_CHARS} a role may; the match is unchanged, and actions "
                                "without free text still play")
        lenient = entry.lenient and entry.penalties < MAX_PENALTIES
        try:
            charged = play_action(entry.referee, role, action if model is None else model,
                                  lenient)
        except PermissionError as exc:  # OutOfTurnError: not this role's turn, or it is over
            why = "the match is over; send reset (or join) to play another" if \
                entry.referee.done else getattr(exc, "reason", exc)
            raise ProtocolError("phase_violation", f"{role} cannot act now: {why}") from None
        except IllegalActionError as exc:
            what = f"action_index {index} is masked now" if index is not None else \
                f"illegal {role} action"
            spent = f" (this match already charged {MAX_PENALTIES} illegal actions; now they " \
                "are refused)" if index is None and entry.lenient else ""
            raise ProtocolError("execution_error", f"{what}: {exc.reason}; the match is "
                                f"unchanged{spent}") from None
        entry.penalties += charged
        entry.text[role] += text
        entry.touch()
        entry.actions.append({"role": role, "action": action})

    def step(self, entry: MatchEntry, role: str, action: dict[str, Any], model=None) -> None:
        """Apply one action and journal it before anyone is told. When the journal refuses it,
        the match is played again without it and StorageError is raised."""
        self.apply(entry, role, action, model)
        try:
            self.journal.step(entry.match_id, len(entry.actions) - 1, role, action)
        except StorageError:
            self.replay_into(entry, entry.actions[:-1])
            raise

    def replay_into(self, entry: MatchEntry, actions: list[dict[str, Any]]) -> None:
        """Rebuild a match from its setup and ``actions`` (a restart, or a journal write that
        failed): a fresh referee, fresh server policies asked again for each of their moves (so
        they are where they were), and every action applied again. Raises ValueError when a
        server policy no longer plays the journaled move, or ProtocolError when an action no
        longer applies."""
        ref = Referee()
        ref.reset_match(**entry.reset_args)
        entry.referee, entry.actions, entry.penalties = ref, [], 0
        entry.text = dict.fromkeys(ROLES, 0)
        self.observers.forget(entry.match_id)
        self._seat_bots(entry)
        for step in actions:
            role, action = step["role"], step["action"]
            bot = entry.seats[role].bot
            if bot is not None:
                mine = self._bot_action(entry, role, bot)
                if mine != action:
                    raise ValueError(f"the {role} opponent {bot.spec!r} now plays "
                                     f"{excerpt(mine)} where the journal has {excerpt(action)}")
            self.apply(entry, role, action)

    def recover(self) -> int:
        """Take back every match the journal holds (a restart); returns how many. A match that
        cannot be played again stays in the journal and is logged at error level."""
        n = 0
        for match in self.journal.matches():
            if match.match_id in self.entries:
                continue
            try:
                if match.broken:
                    raise ValueError(match.broken)
                entry = resumed_entry(match)
                self.replay_into(entry, match.actions)
            except Exception as exc:  # (whatever a damaged journal makes fail: the others resume)
                logger.error("journaled match %s cannot be resumed: %s", match.match_id,
                             getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
                continue
            self.entries[entry.match_id] = entry
            if entry.address is not None:
                self.ledger.created(entry.address)
            n += 1
            if entry.referee.done:  # finished, but its record had not been stored
                self.finish(entry)
                self.release(entry)
        if n:
            logger.warning("resumed %d journaled matches", n)
        return n

    def issue_seat(self, entry: MatchEntry, role: str) -> str:
        """A new token for the role's seat; only its hash is kept, journaled first."""
        token = secrets.token_urlsafe(18)
        digest = token_hash(token)
        self.journal.seat(entry.match_id, role, digest)
        entry.seats[role].token_hash = digest
        return token

    # ------------------------------------------------------------------ leaving the pool
    def _archive(self, entry: MatchEntry, reason: str) -> bool:
        """Store the match's record and drop its journal in one transaction; False when the
        store refused it (logged; the sweeper retries)."""
        try:
            with self.archive.store.transaction():
                self.archive.insert(entry.record(reason))
                self.journal.discard(entry.match_id)
        except StorageError as exc:
            logger.error("match %s could not be archived (%s); its journal keeps it and the "
                         "sweeper retries", entry.match_id, exc)
            return False
        entry.archived = True
        self.unarchived.pop(entry.match_id, None)
        return True

    def finish(self, entry: MatchEntry) -> None:
        """Archive a match that has ended (it stays live while sockets are attached)."""
        if not entry.archived:
            self._archive(entry, "finished")

    def drop(self, entry: MatchEntry, reason: str, why: str | None = None,
             charge: bool = True) -> None:
        """Take a match out of the pool, archiving it if that was not done yet (``why``: a
        few words for its players and the log). Unfinished, it counts against its creator's
        abandon rate unless ``charge`` is False."""
        if self.entries.get(entry.match_id) is not entry:
            return
        del self.entries[entry.match_id]
        self.observers.forget(entry.match_id)
        if entry.address is not None:
            self.ledger.ended(entry.address, abandoned=charge and not entry.referee.done)
        entry.closed = reason
        if not entry.archived and not self._archive(entry, reason):
            self.unarchived[entry.match_id] = (entry, reason)
        told = f"match {entry.match_id} was {reason}" + (f" ({why})" if why else "")
        for seat in entry.seats.values():
            if seat.holder is not None:
                seat.holder.lose(told)
        logger.info("%s (%d live)", told, len(self.entries))

    def release(self, entry: MatchEntry, leaver: Session | None = None, how: str = "closed"
                ) -> None:
        """``leaver`` has left ``entry`` (``how``: ``closed`` its socket, ``moved`` to another
        match, or its socket ``faulted`` on the server's side). With nobody attached any more,
        a finished match is dropped, and so is one a socket made by reset when that socket
        closed or moved before anyone moved, or moved to make another; any other waits
        ``reconnect_grace`` for a player to take its seat back."""
        if entry.connected_roles:
            return
        made_here = leaver is not None and entry in leaver.created
        if entry.referee.done:
            self.drop(entry, "finished")
        elif how != "faulted" and entry.creator_role is not None and not entry.actions:
            self.drop(entry, "evicted", "left before anyone moved")
        elif how == "moved" and made_here:
            self.drop(entry, "evicted", "left by its creator for a new match")
        else:
            entry.unheld_since = time.monotonic()

    def sweep(self, now: float | None = None) -> int:
        """Archive and drop every match nobody has moved in for ``idle_timeout``, unplayed
        ``start_grace`` after its creation, or without a seat held for ``reconnect_grace``;
        returns how many."""
        cfg = self.config
        self.retry_archive()
        now = time.monotonic() if now is None else now
        stale = []
        for e in self.entries.values():
            # a stall on another role's turn is not its creator's doing: no charge, however
            # the match is swept
            mine = e.creator_role is None or PHASE_ROLE.get(e.referee.phase) == e.creator_role
            if cfg.idle_timeout is not None and now - e.last_active >= cfg.idle_timeout:
                stale.append((e, f"idle for {cfg.idle_timeout:g} s", mine))
            elif cfg.start_grace is not None and not e.actions and \
                    now - e.created_at >= cfg.start_grace:
                stale.append((e, f"nobody moved within {cfg.start_grace:g} s", mine))
            elif cfg.reconnect_grace is not None and e.unheld_since is not None and \
                    now - e.unheld_since >= cfg.reconnect_grace:
                stale.append((e, f"no player came back within {cfg.reconnect_grace:g} s",
                              mine))
        for e, why, charge in stale:
            self.drop(e, "finished" if e.referee.done else "evicted", why, charge)
        self.ledger.prune(now)
        return len(stale)

    def retry_archive(self) -> None:
        """Archive again what the store refused before."""
        for entry, reason in list(self.unarchived.values()):
            self._archive(entry, reason)
        for entry in [e for e in self.entries.values() if e.referee.done and not e.archived]:
            self.finish(entry)

    def live_ids(self) -> dict[str, dict[str, Any]]:
        return {mid: e.summary() for mid, e in self.entries.items()}


# ============================================================================ one socket
class Session:
    """One socket: its role, the match it holds a seat in, the matches it created and how it
    wants its observations."""

    def __init__(self, role: str):
        self.role = role
        self.entry: MatchEntry | None = None
        self.obs_format = "json"
        self.created: list[MatchEntry] = []
        self.lost: str | None = None  # why this socket lost its seat
        self.seatless_since: float | None = time.monotonic()  # None while it holds a seat
        self.token: str | None = None  # the seat token of the seat it holds

    def take_seat(self, pool: MatchPool, entry: MatchEntry, token: str | None = None) -> str:
        """Hold this role's seat in ``entry`` (moving it from any other socket); returns the
        seat token: ``token`` (the one presented), or a new one on the seat's first use
        (journaled first: StorageError, and nothing changes, when that fails)."""
        seat = entry.seats[self.role]
        if token is None:
            token = self.token if seat.holder is self else pool.issue_seat(entry, self.role)
        if seat.holder is not None and seat.holder is not self:
            seat.holder.lose(f"the {self.role} seat of match {entry.match_id} was taken back "
                             "by a socket presenting its seat token")
        seat.holder = self
        self.entry, self.lost, self.seatless_since, self.token = entry, None, None, token
        entry.unheld_since = None
        return token

    def lose(self, why: str) -> None:
        self.entry, self.lost, self.seatless_since = None, why, time.monotonic()

    def leave(self, pool: MatchPool, how: str = "closed") -> None:
        """Give up this socket's seat (``how``: see :meth:`MatchPool.release`)."""
        entry, self.entry = self.entry, None
        if self.seatless_since is None:
            self.seatless_since = time.monotonic()
        if entry is not None and entry.seats[self.role].holder is self:
            entry.seats[self.role].holder = None
            pool.release(entry, self, how)

    def live_created(self) -> int:
        self.created = [e for e in self.created if e.closed is None]
        return len(self.created)


def _message(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data}, separators=(",", ":"))


def error_message(message: str, code: str, **extra: Any) -> str:
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS - 3] + "..."
    return _message("error", {"message": message, "code": code, **extra})


def _obs_format(data: dict, current: str) -> str:
    fmt = data.get("obs_format")
    if fmt is None:
        return current
    if fmt not in OBS_FORMATS:
        raise ProtocolError("validation_error", f"obs_format must be one of {list(OBS_FORMATS)}"
                            f", got {excerpt(fmt)}")
    return fmt


def _b64(array: np.ndarray) -> str:
    return binascii.b2a_base64(array, newline=False).decode("ascii")


def sparse_json(vector: np.ndarray, values: bool = True) -> str:
    """A mostly-zero vector as the JSON text of ``{"size", "index", "value"}``: base64 of its
    nonzero positions (little-endian uint16) and of their values (little-endian float32; left
    out for a 0/1 mask). An observation is about a sixth nonzero, so this is a fraction of the
    dense JSON. Built as text: base64 needs no escaping, and ``json.dumps`` would scan its few
    kilobytes character by character."""
    index = (vector != 0).nonzero()[0]  # a bool scan: several times faster than on floats
    text = f'{{"size":{vector.size},"index":"{_b64(index.astype("<u2"))}"'
    if values:
        text += f',"value":"{_b64(vector[index].astype("<f4"))}"'
    return text + "}"


def observation_message(pool: MatchPool, entry: MatchEntry, role: str, obs_format: str,
                        obs=None, **extra: Any) -> str:
    """An observation reply: the role's observation (``obs``, its model, when the step just
    built it) with the header fields and ``extra``."""
    ref = entry.referee
    header = {"match_id": entry.match_id, "role": role, "phase": ref.phase,
              "round_number": ref.round_number, "max_rounds": ref.max_rounds,
              "rounds_remaining": ref.rounds_remaining()}
    if obs_format == "tensor_sparse":
        vector, mask = pool.observers.get(entry.match_id, role).observe(ref)
        head = _message("observation", {**header, "done": ref.done,
                                        "reward": ref.totals[ROLES.index(role)],
                                        "metadata": {}, **extra})
        return (f'{head[:-2]},"observation":{sparse_json(vector)},'
                f'"action_mask":{sparse_json(mask, values=False)}}}}}')
    if obs is None:
        obs = getattr(ref, f"build_{role}_observation")()
    if role == "auditor":
        obs = _audit_view(obs, ref.done)
    if obs_format == "tensor":
        vector, mask = pool.observers.get(entry.match_id, role).observe(ref)
        header.update(observation=vector.tolist(), action_mask=mask.tolist())
    # The observation is serialised by pydantic, straight to text (several times faster than a
    # dict through json.dumps), and the header fields, which replace its own, follow it.
    body = obs.model_dump_json(exclude=header.keys())
    tail = json.dumps({**header, **extra}, separators=(",", ":"))
    sep = "," if body != "{}" else ""
    return f'{{"type":"observation","data":{body[:-1]}{sep}{tail[1:]}}}'


# The fields the seed's clients read on every entry of the auditor's investigator_actions; an
# action the rules charged (illegal_action "penalize") is logged with its reason only.
SEED_INVESTIGATOR_ENTRY = {**dict.fromkeys(("ad_id", "investigation_target", "verdict",
                                            "confidence", "rationale", "linked_ad_id",
                                            "link_reason")), "findings_excerpt": ""}


def _audit_view(obs, done: bool):
    """The auditor's record as a remote auditor gets it: without the investigator's rewards
    until the match is done, and every entry in the seed's shape."""
    log = obs.investigator_actions
    if done and not any(e["action_type"] == "illegal" for e in log):
        return obs
    hide = {} if done else {"reward": None}
    return obs.model_copy(update={"investigator_actions": [
        {**SEED_INVESTIGATOR_ENTRY, **e, **hide} if e["action_type"] == "illegal" else
        {**e, **hide} for e in log]})


def free_text(action: dict[str, Any]) -> int:
    """Characters of free text a text action's record adds to a match's logs (see
    ``MAX_TEXT_CHARS``): its own, and for an edit the ad's text, which its log row repeats."""
    text = sum(len(action[k]) for k in FREE_TEXT if isinstance(action.get(k), str))
    return text + AD_TEXT_CHARS if action.get("action_type") == "modify_pending_ad" else text


def _apply_step(pool: MatchPool, entry: MatchEntry, role: str, data: dict[str, Any]) -> None:
    """Validate one step, apply it and journal it (``MatchPool.step``). Raises ProtocolError,
    and leaves the match untouched, when the step is refused."""
    if "action_index" in data:  # the tensor face
        index = data["action_index"]
        if set(data) - {"action_index", "metadata"}:
            raise ProtocolError("validation_error", "a step by action_index takes no other "
                                f"fields; got {excerpt(sorted(data))}")
        if why := index_refusal(role, index):
            raise ProtocolError("validation_error", f"{why}, got {excerpt(index)}")
        pool.step(entry, role, {"action_index": index})
        return
    try:  # the text face
        action = ACTION_MODELS[role].model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("validation_error", f"invalid {role} action: "
                            f"{validation_message(exc)}") from None
    record = action.model_dump(mode="json", exclude_none=True, exclude={"metadata"})
    pool.step(entry, role, record, action)


def decode_json(raw: str | bytes, max_bytes: int) -> Any:
    """A message or request body parsed, within the limits every entry point shares (size,
    nesting, text that is text), or ProtocolError."""
    size = len(raw) if isinstance(raw, bytes) or len(raw) * 4 <= max_bytes else \
        len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ProtocolError("message_too_large", f"a message may be at most {max_bytes} bytes; "
                            f"this one has {size}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError("invalid_json", f"the frame is not valid JSON: {exc.msg} at "
                            f"position {exc.pos}") from None
    except RecursionError:  # far deeper than the limit: the decoder ran out of stack
        raise ProtocolError("validation_error", too_deep()) from None
    except UnicodeDecodeError as exc:
        raise ProtocolError("invalid_json", "the frame is not UTF-8 text (a bad byte at "
                            f"position {exc.start}); send JSON as UTF-8") from None
    except ValueError:  # an integer longer than Python reads (sys.get_int_max_str_digits)
        raise ProtocolError("invalid_json", "the frame holds a number of more digits than "
                            f"{sys.get_int_max_str_digits()}; no field takes one that long"
                            ) from None
    if why := nesting_refusal(raw, value):
        raise ProtocolError("validation_error", why)
    if (b"\\u" if isinstance(raw, bytes) else "\\u") in raw and has_lone_surrogate(value):
        raise ProtocolError("validation_error", "the message holds a lone UTF-16 surrogate "
                            "(\\ud800-\\udfff), which is not text")
    return value


@dataclass
class Later:
    """A reply that waits for the server's seats to move: ``serve_socket`` moves them one per
    turn of the event loop (a whole match of them would hold up every socket), then builds it."""

    entry: MatchEntry
    build: Any  # () -> the reply text


class Handler:
    """Answers the messages of one socket. With ``cooperative`` (the socket loop of
    :func:`serve_socket`), a reply the server's seats must move first is a :class:`Later` (see
    :meth:`complete`), and the record of a match a message ended is stored after its reply
    (:meth:`store_ended`); otherwise the seats move and the record is stored at once."""

    def __init__(self, pool: MatchPool, role: str, address: str | None = None,
                 cooperative: bool = False):
        self.pool = pool
        self.cooperative = cooperative
        # The client address its creations count against; None (a handler driven in process)
        # is not limited.
        self.address = address
        self.session = Session(role)
        self.durable = None  # the fsync the next reply must wait for
        self.ended: MatchEntry | None = None  # a match whose record waits for the reply

    @property
    def role(self) -> str:
        return self.session.role

    def _entry(self) -> MatchEntry:
        entry = self.session.entry
        if entry is None:
            if self.session.lost:
                raise ProtocolError("no_match", f"this socket has no match: {self.session.lost}")
            raise ProtocolError("no_match", f"this {self.role} socket has no match yet: send "
                                "reset (to create one) or join (with a match_id) first")
        return entry

    def handle(self, raw: str | bytes) -> str | Later | None:
        """The reply to one frame (a :class:`Later` when cooperative and the server's seats
        must move first), or None for ``close``. Raises only on internal faults."""
        try:
            return self._dispatch(raw)
        except ProtocolError as exc:
            return error_message(exc.message, exc.code, **exc.extra)
        except StorageError as exc:
            return self._storage_error(exc)

    def _storage_error(self, exc: StorageError) -> str:
        match = self.session.entry.match_id if self.session.entry else None
        logger.error("storage refused a write for %s (match %s): %s", self.role, match, exc)
        return error_message("the server could not store this message, so it was not applied "
                             "(the match is as it was); try again later", "storage_error")

    def _advance(self, entry: MatchEntry, build) -> str | Later:
        """After a message: the server's seats move until a remote role is to act, and a match
        that has ended has its journal's fsync started (``durable``) before ``build()`` makes
        the reply. Its record is stored at once, or after the reply when ``cooperative``."""
        if entry.opponents:
            if self.cooperative and self.pool.bot_to_move(entry) is not None:
                return Later(entry, build)
            self.pool.run_bots(entry)
        if entry.referee.done and not entry.archived:
            self.durable = self.pool.archive.store.sync()
            if self.cooperative:  # the journal has the match: the record can follow the reply
                self.ended = entry
            else:
                self.pool.finish(entry)
        return build()

    def store_ended(self) -> None:
        """Archive the match the last reply ended (when cooperative); a record the store refuses
        is logged, and the sweeper retries it."""
        entry, self.ended = self.ended, None
        if entry is not None:
            self.pool.finish(entry)

    async def complete(self, later: Later, bucket: TokenBucket | None = None) -> str:
        """The reply of a :class:`Later`, once the server's seats have moved, one per turn of the
        event loop (each move is atomic; a remote role can only watch meanwhile). Each move
        spends a token of ``bucket``, the asking socket's rate limit, waiting for one if need be:
        the server's moves made for a socket count as its messages."""
        try:
            await self.pool.play_bots(later.entry, bucket)
            return self._advance(later.entry, later.build)
        except ProtocolError as exc:
            return error_message(exc.message, exc.code, **exc.extra)
        except StorageError as exc:
            return self._storage_error(exc)

    def _dispatch(self, raw: str | bytes) -> str | None:
        msg = decode_json(raw, self.pool.config.max_message_bytes)
        if not isinstance(msg, dict):
            raise ProtocolError("invalid_json", "a message must be a JSON object "
                                "{\"type\": ..., \"data\": {...}}, got a "
                                f"{type(msg).__name__}")
        kind = msg.get("type")
        if kind not in MESSAGE_TYPES:
            raise ProtocolError("unknown_type", f"message type {excerpt(kind)} is not one of "
                                f"{', '.join(MESSAGE_TYPES)}")
        data = msg.get("data")
        if data is None:
            data = {}
        elif not isinstance(data, dict):
            raise ProtocolError("validation_error", f"'data' must be a JSON object, got a "
                                f"{type(data).__name__}")
        return getattr(self, f"on_{kind}")(data)

    def _observation(self, entry: MatchEntry, fmt: str, **extra: Any) -> str:
        return observation_message(self.pool, entry, self.role, fmt, **extra)

    def on_reset(self, data: dict[str, Any]) -> str:
        session, pool = self.session, self.pool
        fmt = _obs_format(data, session.obs_format)
        # The match this socket leaves, when it made it and nobody else is attached, is
        # abandoned (see MatchPool.release): its place counts as free for the new one.
        leaving = session.entry
        abandoned = leaving is not None and leaving in session.created and not any(
            s.holder is not None and s.holder is not session for s in leaving.seats.values())
        cap = pool.config.max_matches_per_connection
        if session.live_created() - abandoned >= cap:
            raise ProtocolError("capacity_reached", f"this socket already created {cap} live "
                                "matches; finish or leave them first")
        entry = pool.create(data, self.address, self.role, leaving if abandoned else None)
        if leaving is not None:  # only now: a refused reset leaves the socket where it was
            session.leave(pool, "moved")
        session.created.append(entry)
        token = session.take_seat(pool, entry)
        session.obs_format = fmt
        return self._advance(entry, lambda: self._observation(
            entry, fmt, seat_token=token, seed_chosen_by_client=entry.client_seed))

    def on_join(self, data: dict[str, Any]) -> str:
        match_id = data.get("match_id")
        if match_id is None or match_id == "":
            raise ProtocolError("missing_match_id", "join needs data.match_id, the id a reset "
                                f"reply carried (got {excerpt(match_id)})")
        if not isinstance(match_id, str):  # there, but no id
            raise ProtocolError("validation_error", "data.match_id must be a string, the id a "
                                f"reset reply carried (got {excerpt(match_id)})")
        if why := id_refusal("match_id", match_id):
            raise ProtocolError("validation_error", f"{why}, got {excerpt(match_id)}")
        fmt = _obs_format(data, self.session.obs_format)
        entry = self.pool.get(match_id)
        if entry is None:
            raise ProtocolError("unknown_match", f"no live match has id {excerpt(match_id)} "
                                "(it may have ended and been archived)")
        session = self.session
        seat = entry.seats[self.role]
        token = data.get("seat_token")
        if seat.bot is not None:
            raise ProtocolError("role_taken", f"the {self.role} seat of this match is played by "
                                f"the server ({excerpt(seat.bot.spec)})")
        presented = None
        if seat.holder is not session:
            if seat.issued and not seat.accepts(token):
                raise ProtocolError("role_taken", f"the {self.role} seat of this match is "
                                    "held; present its seat_token to take it back")
            presented = token if seat.issued else None
            if not seat.issued:  # the first to take it: its token is issued before it moves
                presented = self.pool.issue_seat(entry, self.role)
            if session.entry is not None:
                session.leave(self.pool, "moved")
        token = session.take_seat(self.pool, entry, presented)
        session.obs_format = fmt
        return self._advance(entry, lambda: self._observation(
            entry, fmt, seat_token=token, seed_chosen_by_client=entry.client_seed))

    def on_step(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        _apply_step(self.pool, entry, self.role, data)
        return self._advance(entry, lambda: observation_message(self.pool, entry, self.role,
                                                                self.session.obs_format))

    def on_obs(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        fmt = self.session.obs_format = _obs_format(data, self.session.obs_format)
        # resumes the server's seats if the store stopped them
        return self._advance(entry, lambda: self._observation(entry, fmt))

    def on_state(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        return _message("state", sealed_state(entry.referee, self.role, entry.match_id,
                                              entry.episode_id))

    def on_close(self, data: dict[str, Any]) -> None:
        return None


async def _refuse(websocket: WebSocket, reply: str) -> None:
    """Accept, say why, and close: 1013 is "try again later"."""
    await websocket.accept()
    with contextlib.suppress(Exception):
        await websocket.send_text(reply)
        await websocket.close(code=1013)


async def _receive(websocket: WebSocket, session: Session, lobby_timeout: float | None):
    """The next ASGI event, or None once a socket without a seat has waited out
    ``lobby_timeout`` (a socket holding a seat waits as long as it likes: the match has its own
    timeouts)."""
    if session.seatless_since is None or lobby_timeout is None:
        return await websocket.receive()
    left = session.seatless_since + lobby_timeout - time.monotonic()
    if left <= 0:
        return None
    try:
        return await asyncio.wait_for(websocket.receive(), left)
    except asyncio.TimeoutError:  # noqa: UP041 - on Python 3.10 it is not the builtin
        return None


def rate_limited_message(bucket: TokenBucket) -> str:
    """The reply to a message past the socket's rate: it was not read, so sending it again
    after ``retry_after`` seconds is safe (the repo's clients do)."""
    wait = bucket.wait()
    return error_message(f"this socket may send {bucket.rate:g} messages a second (burst "
                         f"{bucket.burst}); the message was not read; retry in "
                         f"{1000 * wait:.0f} ms", "rate_limited", **retry_field(wait))


def _log_failed_fsync(durable) -> None:
    """The store's fsync at a match's end (a ``concurrent.futures.Future`` on its own thread)
    failed: the match is committed, and survives the server's crash, but may not survive the
    machine's; say so at error level."""
    exc = durable.exception()
    if exc is not None:
        logger.error("fsync of the store failed: %s", exc)


async def serve_socket(websocket: WebSocket, pool: MatchPool, role: str,
                       handshakes: AddressBuckets | None = None) -> None:
    """Run one role socket until the client closes it or leaves. ``handshakes``: the per-address
    HTTP buckets this handshake spends a token of (None: not counted)."""
    config = pool.config
    address = address_key(websocket.client.host if websocket.client else None)
    spent = None if handshakes is None else handshakes.take(address)
    if spent is not None:
        wait = spent.wait()
        await _refuse(websocket, error_message(
            f"this address may open {spent.rate:g} connections (HTTP requests and WebSocket "
            f"handshakes) a second (burst {spent.burst}); retry in {1000 * wait:.0f} ms",
            "rate_limited", **retry_field(wait)))
        return
    refusal = pool.ledger.connect(address)
    if refusal is not None:
        await _refuse(websocket, error_message(refusal, "capacity_reached"))
        return
    await websocket.accept()
    handler = Handler(pool, role, address, cooperative=True)
    bucket = None if config.rate_limit is None else TokenBucket(config.rate_limit,
                                                                config.rate_burst)
    try:
        while True:
            frame = await _receive(websocket, handler.session, config.lobby_timeout)
            if frame is None:
                await websocket.send_text(error_message(
                    f"closing this socket: it held no seat for {config.lobby_timeout:g} s "
                    f"({handler.session.lost or 'send reset or join after connecting'})",
                    "no_match"))
                await websocket.close(code=1000)
                break
            if frame["type"] == "websocket.disconnect":
                break
            if bucket is not None and not bucket.take():
                reply = rate_limited_message(bucket)
            else:
                raw = frame.get("text")
                if raw is None:
                    raw = frame.get("bytes") or b""
                try:
                    reply = handler.handle(raw)
                    if isinstance(reply, Later):
                        reply = await handler.complete(reply, bucket)
                except Exception as exc:
                    match = handler.session.entry.match_id if handler.session.entry else None
                    logger.exception("internal fault serving %s (match %s)", role, match)
                    await websocket.send_text(error_message(
                        f"internal server error: {type(exc).__name__}", "fatal_error"))
                    handler.session.leave(pool, "faulted")  # before the close frame
                    await websocket.close(code=1011)
                    break
                if reply is None:  # close
                    handler.session.leave(pool)
                    await websocket.close()
                    break
                if handler.durable is not None:  # the match is over, its journal committed:
                    # the fsync that follows is not waited for (see _log_failed_fsync)
                    handler.durable.add_done_callback(_log_failed_fsync)
                    handler.durable = None
            await websocket.send_text(reply)
            # Fair turns: the frames a socket has queued are read one per turn of the event
            # loop, so every other socket with a message waiting is served in between.
            await asyncio.sleep(0)
            handler.store_ended()
    except WebSocketDisconnect:
        pass
    except Exception:  # the client went away mid-send, or the transport failed
        logger.debug("%s socket ended", role, exc_info=True)
    finally:
        handler.session.leave(pool)
        pool.ledger.disconnect(address)


# ============================================================================ the app
def create_app(config: ServerConfig | None = None, **options: Any) -> FastAPI:
    """A FastAPI app serving FraudArena. ``options`` are ``ServerConfig`` fields (used when no
    config is given). Its pool is ``app.state.pool``."""
    from . import __version__

    config = config or ServerConfig(**options)
    archive = Archive(config.data_dir)
    try:
        pool = MatchPool(config, archive)
        pool.recover()
    except BaseException:  # the store's lock and files are not left open by a failed start
        archive.close()
        raise

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async def sweeper():
            while True:
                await asyncio.sleep(config.sweep_interval)
                try:
                    pool.sweep()
                    pool.archive.store.checkpoint()
                except Exception:  # pragma: no cover - keep sweeping
                    logger.exception("sweep failed")

        async def collector():
            while True:
                await asyncio.sleep(config.collect_interval)
                gc.collect()

        tasks = [asyncio.create_task(sweeper())]
        collecting = gc.isenabled() and config.collect_interval is not None
        if collecting:
            # Everything loaded so far lives as long as the server: out of the collector's way.
            gc.collect()
            gc.freeze()
            gc.disable()
            tasks.append(asyncio.create_task(collector()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if collecting:
                gc.unfreeze()
                gc.enable()
            # Live matches stay in the journal: the next start resumes them.
            pool.archive.close()

    app = FastAPI(title="FraudArena", version=__version__, lifespan=lifespan,
                  description="Three-role ad-fraud game: WebSocket role endpoints.")
    app.state.pool = pool
    http_buckets = None if config.http_rate_limit is None else AddressBuckets(
        config.http_rate_limit, config.http_rate_burst)
    replay_pages: OrderedDict[str, str] = OrderedDict()  # archived matches do not change

    @app.middleware("http")
    async def http_rate(request: Request, call_next):
        """Each client address's HTTP requests spend its bucket (the API key's do not); one
        past it is answered 429 ``rate_limited``, with when to retry, and not handled."""
        if http_buckets is not None and not key_holder(request):
            bucket = http_buckets.take(address_key(request.client.host if request.client
                                                   else None))
            if bucket is not None:
                wait = bucket.wait()
                reply = _http_error(
                    429, "rate_limited", f"this address may make {bucket.rate:g} HTTP requests "
                    f"a second (burst {bucket.burst}); retry in {1000 * wait:.0f} ms",
                    **retry_field(wait))
                reply.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return reply
        return await call_next(request)

    def endpoint(role: str):
        async def play(websocket: WebSocket) -> None:
            counted = http_buckets is not None and not key_holder(websocket)
            await serve_socket(websocket, pool, role, http_buckets if counted else None)
        return play

    for role in ROLES:
        app.add_api_websocket_route(f"/ws/{role}", endpoint(role), name=f"ws_{role}")

    def live_listing() -> dict[str, Any]:
        if config.diagnostics:
            return {"active_matches": pool.live_ids(), "live": len(pool)}
        return {"active_matches": {}, "live": len(pool),
                "note": "live match ids are listed only when the server runs with --diagnostics"}

    @app.get("/matches")
    async def matches() -> dict[str, Any]:
        return live_listing()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """What is stored, counted in the store: ``archived`` records, ``journaled`` live
        matches; ``unarchived``, matches whose record the store refused (kept in the journal and
        retried); ``storage_error``, the last refused write until one succeeds."""
        store = pool.archive.store
        error = store.last_error
        try:
            archived, journaled = len(pool.archive), len(pool.journal)
        except Exception as exc:  # the database cannot even be read
            archived = journaled = None
            error = error or f"{type(exc).__name__}: {exc}"
        return {"status": "ok" if error is None and not pool.unarchived else "degraded",
                "live": len(pool), "max_matches": config.max_matches, "archived": archived,
                "journaled": journaled, "unarchived": len(pool.unarchived),
                "storage": "disk" if store.persistent else "memory", "storage_error": error}

    def key_holder(request: HTTPConnection) -> bool:
        """Whether the request (or WebSocket handshake) carries this server's API key."""
        if config.api_key is None:
            return False
        presented = request.headers.get("x-api-key")
        if presented is None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            presented = value.strip() if scheme.lower() == "bearer" else None
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), config.api_key.encode())

    def closed_api() -> JSONResponse:
        how = "send the server's API key in X-API-Key" if config.api_key else \
            f"the operator must start the server with --api-key (or {API_KEY_ENV})"
        return _http_error(401, "unauthorized", f"this needs the API key: {how}, or the "
                           "operator may open it to anyone with --open-api")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own refusals, without the input they would echo."""
        where = "; ".join(".".join(str(p)[:24] for p in err.get("loc", ()))
                          + f": {str(err.get('msg', 'invalid'))[:80]}" for err in exc.errors()[:3])
        return _http_error(422, "validation_error", f"invalid request: {where}")

    @app.get("/api/v1/matches")
    async def list_matches(request: Request, limit: int = 50):
        if not (config.open_api or key_holder(request)):
            return closed_api()
        return {**live_listing(), "archived": pool.archive.listing(min(max(limit, 0), 1000))}

    @app.post("/api/v1/matches")
    async def create_match(request: Request):
        key = key_holder(request)
        if not (key or config.open_api):
            return closed_api()
        try:
            body = await _read_body(request, config.max_message_bytes)
            data = decode_json(body, config.max_message_bytes) if body else {}
            if not isinstance(data, dict):
                raise ProtocolError("validation_error", "the body must be a JSON object of "
                                    "reset data")
            entry = pool.create(data, None if key else address_key(
                request.client.host if request.client else None))
            tokens = {role: pool.issue_seat(entry, role) for role in ROLES
                      if entry.seats[role].bot is None}
            entry.unheld_since = time.monotonic()  # no socket holds a seat of it yet
            await pool.play_bots(entry)  # (the request was counted: its moves are its own)
        except ProtocolError as exc:
            return _http_error(HTTP_STATUS.get(exc.code, 400), exc.code, exc.message, **exc.extra)
        except StorageError as exc:
            logger.error("storage refused a write for POST /api/v1/matches: %s", exc)
            return _http_error(503, "storage_error", "the server could not store the match")
        return {"match_id": entry.match_id, "episode_id": entry.episode_id,
                "task_id": entry.referee.task.task_id,
                "seed_chosen_by_client": entry.client_seed, "seat_tokens": tokens}

    def archive_refusal(record: dict[str, Any], request: Request) -> JSONResponse | None:
        """An archived record (seed, labels, rationales) is for one of its seat holders
        (``X-Seat-Token``) or the API key: the refusal for anyone else, else ``None``."""
        token = request.headers.get("x-seat-token")
        digests = record.get("seat_digests") or {}
        if config.open_api or key_holder(request) or any(token_matches(token, d)
                                                          for d in digests.values()):
            return None
        return _http_error(403 if token else 401, "forbidden" if token else "unauthorized",
                           "an archived match is readable with one of its seat tokens "
                           "(X-Seat-Token) or the server's API key (X-API-Key)")

    def damaged(exc: DamagedRecord, cause: Exception | None = None) -> JSONResponse:
        """The answer for a record the store holds but cannot read back: 410, for it is gone
        for good (asking again will not help), naming the match. Its seat digests may be what
        is damaged, so it is the same for every caller, and says only which part is damaged;
        the page's (a record that no longer plays, for a caller that may read it) says why."""
        logger.error("%s", exc, exc_info=cause)
        return _http_error(410, "damaged_record", f"{exc}; the server cannot serve it",
                           match_id=exc.match_id)

    @app.get("/api/v1/matches/{match_id}")
    async def get_match(match_id: str, request: Request):
        if why := id_refusal("match_id", match_id):
            return _http_error(400, "validation_error", why)
        entry = pool.get(match_id)
        if entry is not None:
            return entry.summary()
        try:
            record = pool.archive.get(match_id)
        except DamagedRecord as exc:
            return damaged(exc)
        if record is None:
            return _http_error(404, "unknown_match", f"no match has id {excerpt(match_id)}")
        if refusal := archive_refusal(record, request):
            return refusal
        return {**{k: v for k, v in record.items() if k != "seat_digests"}, "live": False}

    @app.get("/api/v1/matches/{match_id}/replay.html")
    async def replay_page(match_id: str, request: Request):
        if why := id_refusal("match_id", match_id):
            return _http_error(400, "validation_error", why)
        try:
            record = pool.archive.get(match_id)
        except DamagedRecord as exc:
            return damaged(exc)
        if record is None:
            return _http_error(404, "unknown_match", f"no archived match has id "
                               f"{excerpt(match_id)} (a live match's page is served once it is "
                               "archived)")
        if refusal := archive_refusal(record, request):
            return refusal
        from .replay_page import replay_html

        page = replay_pages.get(match_id)
        if page is None:  # replaying takes milliseconds per match; off the loop all the same
            try:
                page = await asyncio.to_thread(
                    replay_html, {k: v for k, v in record.items() if k != "seat_digests"})
            except Exception as exc:  # noqa: BLE001 - a record whose actions no longer play
                return damaged(DamagedRecord(match_id, "it cannot be played again "
                                             f"({type(exc).__name__}: {str(exc)[:160]})"), exc)
            replay_pages[match_id] = page
            if len(replay_pages) > REPLAY_PAGES_KEPT:
                replay_pages.popitem(last=False)
        else:
            replay_pages.move_to_end(match_id)
        return HTMLResponse(page)

    @app.delete("/api/v1/matches/{match_id}")
    async def delete_match(match_id: str, request: Request):
        if why := id_refusal("match_id", match_id):
            return _http_error(400, "validation_error", why)
        entry = pool.get(match_id)
        if entry is None:
            return _http_error(404, "unknown_match", f"no live match has id {excerpt(match_id)}")
        token = request.headers.get("x-seat-token")
        creator = entry.creator_role and entry.seats[entry.creator_role]
        if not (key_holder(request) or (creator and creator.accepts(token))):
            return _http_error(403, "forbidden", "only the seat of the socket that created the "
                               "match (its token in X-Seat-Token) or the server's API key "
                               "(X-API-Key) may delete it")
        pool.drop(entry, "deleted")
        return {"match_id": match_id, "deleted": True}

    return app


# HTTP statuses of the error codes a REST request may meet (any other: 400).
HTTP_STATUS = {"message_too_large": 413, "capacity_reached": 503, "rate_limited": 429,
               "unknown_match": 404, "unauthorized": 401, "forbidden": 403,
               "damaged_record": 410}


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, read no further than ``limit`` bytes (ProtocolError past it)."""
    declared = request.headers.get("content-length", "")
    if len(declared) > 12 or (declared.isdigit() and int(declared) > limit):
        raise ProtocolError("message_too_large", f"a body may be at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError("message_too_large", f"a body may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _http_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message[:MAX_ERROR_CHARS], "code": code, **extra},
                        status_code=status)


# ============================================================================ command line
def spawn(port: int, *options: str, timeout: float = 30.0, quiet: bool = False):
    """Start ``fraudarena serve`` on 127.0.0.1:``port`` in a child process and wait until it
    accepts connections (for benchmarks and tests). Returns the ``Popen``; raises
    ``RuntimeError`` (after killing it) when it does not come up in ``timeout`` seconds."""
    import socket
    import subprocess
    import sys

    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen([sys.executable, "-m", "fraudarena_env.server", "--port", str(port),
                             "--log-level", "warning", *options], stdout=out, stderr=out)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the server did not start on port {port}")


def _port(text: str) -> int:
    """A TCP port: 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 0 to 65535, got {value}")
    return value


def _seconds(text: str) -> float | None:
    """A duration flag: seconds, or a negative number for never."""
    value = float(text)
    return None if value < 0 else value


def _per_second(text: str) -> float | None:
    """A rate flag: per second, or 0 for no limit."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a rate must be >= 0 (0: no limit), got {text}")
    return value or None


def build_parser(prog: str = "fraudarena serve") -> argparse.ArgumentParser:
    d = ServerConfig()
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve FraudArena over WebSockets: /ws/fraudster, "
        "/ws/investigator, /ws/auditor, and the REST API under /api/v1. Durations are in "
        "seconds (negative: never); rates per second (0: no limit). Limits per address count "
        "a client's IP (an IPv6 client's /64): the address it connects from, or, from a "
        "reverse proxy named in --forwarded-allow-ips, the one its X-Forwarded-For gives.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000,
                        help="port, 0 to 65535 (default 8000; 0: any free port)")
    parser.add_argument("--forwarded-allow-ips", default="", metavar="IPS",
                        help="comma-separated addresses of reverse proxies (e.g. 127.0.0.1) "
                        "whose X-Forwarded-For names the client (default: none, so that a "
                        "client cannot name itself another address and escape the limits per "
                        "address, or spend another client's)")
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--data-dir", default=None,
                       help="directory of the store: archived matches and the journal that "
                       "resumes live ones after a restart (default: $FRAUDARENA_DATA_DIR, else "
                       "$XDG_DATA_HOME/fraudarena, else ~/.local/share/fraudarena)")
    store.add_argument("--in-memory", action="store_true",
                       help="keep the store in memory: nothing survives the process")
    parser.add_argument("--checkpoint-dir", default=None,
                        help="a directory of MaskablePPO checkpoints that a reset's opponents "
                        "may name (default: none; policy names only)")
    access = parser.add_argument_group("access")
    access.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help="the key (16+ characters) that creates matches over REST (POST "
                        "/api/v1/matches) and reads the archive (GET /api/v1/matches, and any "
                        "archived record), sent as X-API-Key; default: the environment "
                        f"variable {API_KEY_ENV} (better than the command line, which other "
                        "local users can see). Without a key those routes are closed, unless "
                        "--open-api. Playing over the sockets never needs it")
    access.add_argument("--open-api", action="store_true",
                        help="let anyone create matches over REST and read the archive, with "
                        "per-address limits (an archived record is always readable with one of "
                        "its seat tokens in X-Seat-Token)")
    access.add_argument("--no-client-seeds", action="store_true",
                        help="draw every match's seed on the server and refuse a reset that "
                        "names one (a creator who picks the seed can rebuild every label)")
    access.add_argument("--diagnostics", action="store_true",
                        help="list live match ids on GET /matches and /api/v1/matches")
    caps = parser.add_argument_group("limits")
    caps.add_argument("--max-matches", type=int, default=d.max_matches,
                      help=f"live matches at most (default {d.max_matches})")
    caps.add_argument("--max-matches-per-address", type=int,
                      default=d.max_matches_per_address,
                      help="live matches created from one client address (default "
                      f"{d.max_matches_per_address}; the API key is not limited)")
    caps.add_argument("--max-matches-per-connection", type=int,
                      default=d.max_matches_per_connection,
                      help="live matches one socket may have created (default "
                      f"{d.max_matches_per_connection})")
    caps.add_argument("--max-connections", type=int, default=d.max_connections,
                      help=f"open sockets at most (default {d.max_connections})")
    caps.add_argument("--max-connections-per-address", type=int,
                      default=d.max_connections_per_address,
                      help="open sockets from one client address (default "
                      f"{d.max_connections_per_address})")
    caps.add_argument("--rate-limit", type=_per_second, default=d.rate_limit,
                      help=f"messages a second one socket may send (default {d.rate_limit:g}); "
                      "a message past it is answered rate_limited")
    caps.add_argument("--rate-burst", type=int, default=d.rate_burst,
                      help=f"messages a socket may send at once (default {d.rate_burst})")
    caps.add_argument("--abandon-rate", type=_per_second, default=d.abandon_rate,
                      help="matches a second one address may leave unfinished (reset spam: "
                      f"create, leave, repeat; default {d.abandon_rate:g}): past it, the "
                      "address creates no match until the rate allows. Matches played to the "
                      "end cost nothing")
    caps.add_argument("--abandon-burst", type=int, default=d.abandon_burst,
                      help=f"unfinished matches an address may leave at once (default "
                      f"{d.abandon_burst})")
    caps.add_argument("--http-rate-limit", type=_per_second, default=d.http_rate_limit,
                      help=f"HTTP requests a second one client address may make (default "
                      f"{d.http_rate_limit:g}; 0: no limit; the API key's are not counted); "
                      "a request past it is answered 429 rate_limited")
    caps.add_argument("--http-rate-burst", type=int, default=d.http_rate_burst,
                      help=f"HTTP requests an address may make at once (default "
                      f"{d.http_rate_burst})")
    caps.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes,
                      help=f"largest message or body accepted (default {d.max_message_bytes})")
    times = parser.add_argument_group("timeouts")
    times.add_argument("--start-grace", type=_seconds, default=d.start_grace,
                       help="a match nobody has moved in this long after its creation is "
                       f"archived and dropped (default {d.start_grace:g})")
    times.add_argument("--reconnect-grace", type=_seconds, default=d.reconnect_grace,
                       help="a match no socket holds a seat of is archived and dropped after "
                       f"this long: a dropped player's time to come back (default "
                       f"{d.reconnect_grace:g})")
    times.add_argument("--idle-timeout", type=_seconds, default=d.idle_timeout,
                       help="a match nobody has moved in for this long (polls and joins are no "
                       f"moves) is archived and dropped (default {d.idle_timeout:g})")
    times.add_argument("--lobby-timeout", type=_seconds, default=d.lobby_timeout,
                       help="a socket that holds no seat this long is closed (default "
                       f"{d.lobby_timeout:g})")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"))
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig of parsed ``fraudarena serve`` arguments (ValueError if invalid)."""
    timeouts = [t for t in (args.idle_timeout, args.start_grace, args.reconnect_grace) if t]
    return ServerConfig(
        max_matches=args.max_matches, max_matches_per_address=args.max_matches_per_address,
        max_matches_per_connection=args.max_matches_per_connection,
        max_connections=args.max_connections,
        max_connections_per_address=args.max_connections_per_address,
        idle_timeout=args.idle_timeout, start_grace=args.start_grace,
        reconnect_grace=args.reconnect_grace, lobby_timeout=args.lobby_timeout,
        sweep_interval=max(0.25, min([5.0, *(t / 4 for t in timeouts)])),
        rate_limit=args.rate_limit, rate_burst=args.rate_burst, abandon_rate=args.abandon_rate,
        abandon_burst=args.abandon_burst, http_rate_limit=args.http_rate_limit,
        http_rate_burst=args.http_rate_burst, max_message_bytes=args.max_message_bytes,
        api_key=args.api_key or None, open_api=args.open_api,
        client_seeds=not args.no_client_seeds,
        data_dir=None if args.in_memory else str(args.data_dir or default_data_dir()),
        checkpoint_dir=args.checkpoint_dir,
        diagnostics=args.diagnostics)


def proxy_options(forwarded_allow_ips: str) -> dict:
    """uvicorn's options for X-Forwarded-For: trusted only from the proxies named. uvicorn's own
    default trusts it from 127.0.0.1, where every client of a server on this host connects
    from: any of them could then give itself another address."""
    proxies = ",".join(ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip())
    if not proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": proxies}


def main(argv: list[str] | None = None) -> int:
    """``fraudarena serve``: run the app with uvicorn until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    import uvicorn

    try:
        app = create_app(config)
    except StorageError as exc:  # another server holds the directory, or it cannot be opened
        print(f"fraudarena serve: {exc}", file=sys.stderr)
        return 2
    # uvicorn's own connection limit (HTTP 503) backs the server's, which answers first.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                **UVICORN_OPTIONS, **proxy_options(args.forwarded_allow_ips),
                ws_max_size=4 * config.max_message_bytes,
                limit_concurrency=config.max_connections + 64)
    return 0


__all__ = ["API_KEY_ENV", "ERROR_CODES", "HTTP_ERROR_CODES", "UVICORN_OPTIONS", "MatchEntry",
           "MatchPool", "ServerConfig", "config_from_args", "create_app", "main", "spawn"]

if __name__ == "__main__":
    raise SystemExit(main())
