"""Load benchmark of the WebSocket server: N concurrent matches, three sockets each.

The server runs in its own process (``python -m fraudarena_env.server``); this process is the
client. Each match is played by the scripted baselines on the tensor face (``tensor_sparse``
observations, ``action_index`` steps) over three sockets, one per role, and a new match is
started as soon as one ends. A step costs one ``step`` message, plus an ``obs`` message when the
turn passes to another role. Printed: aggregate steps/s, the p50/p99 latency of a step message
(send to reply), the server's CPU time per step (from /proc), errors, and the server's memory per
idle match (RSS growth over ``--idle`` matches created through the REST API and observed).

The baselines' decisions are worked out before the run, in this process, for ``--seeds``
matches, and replayed over the sockets (matches cycle through those seeds): remote agents think
on their own machines, and a client that also ran the scripted investigator (about 0.3 ms a
decision) in the same event loop and on the same two cores would time its own queue, not the
server. The client still decodes every reply, checks that each replayed action is legal in the
mask the server sent, and that each match ends with the rewards it had in process.
``--live-policies`` decides every action in the loop instead, as a single client process
playing all the roles would.

    python benchmarks/bench_server.py                     # 50 matches for 20 s
    python benchmarks/bench_server.py --matches 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import socket
import tempfile
import time

import numpy as np

from fraudarena_env.catalog import PHASE_ROLE, ROLES
from fraudarena_env.client import AsyncFraudArenaClient, ServerError
from fraudarena_env.faces.encoding import Observer, apply_index
from fraudarena_env.policies import HeuristicAuditor, ReactiveFraudster, ScriptedInvestigator
from fraudarena_env.referee import Referee
from fraudarena_env.server import spawn

TASK = "task_3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Stats:
    def __init__(self):
        self.steps = 0
        self.matches = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.measuring = False


def baselines(seed: int) -> dict:
    return {"fraudster": ReactiveFraudster(seed=seed),
            "investigator": ScriptedInvestigator(seed=seed),
            "auditor": HeuristicAuditor(seed=seed)}


def decide_match(seed: int) -> tuple[list[tuple[str, int]], tuple[float, ...]]:
    """The baselines' moves in one match, played in process on the tensor face, and the
    match's final returns (fraudster, investigator, auditor)."""
    ref, policies = Referee(), baselines(seed)
    observers = {r: Observer(r) for r in ROLES}
    ref.reset_match(seed=seed, task_id=TASK)
    moves = []
    while (role := PHASE_ROLE.get(ref.phase)) is not None:
        vector, mask = observers[role].observe(ref)
        index = int(policies[role].act({"observation": vector, "action_mask": mask}))
        moves.append((role, index))
        apply_index(ref, role, index)
    return moves, tuple(ref.totals)


class Replay:
    """One socket per role, playing matches through their moves, one step at a time."""

    def __init__(self, clients: dict, stats: Stats):
        self.clients, self.stats = clients, stats
        self.acting = "fraudster"
        self.obs = None

    async def start(self, seed: int):
        self.obs = await self.clients["fraudster"].reset(seed=seed, task_id=TASK)
        match_id = self.clients["fraudster"].match_id
        for r in ("investigator", "auditor"):
            await self.clients[r].join(match_id)
        self.acting = "fraudster"
        return self.clients["fraudster"].last_data

    async def step(self, role: str, decide) -> dict:
        """Observe if the turn has passed to ``role``, then play ``decide(obs)``; returns the
        reply's data."""
        client = self.clients[role]
        if role != self.acting:
            self.obs = await client.observe()
            self.acting = role
        action = decide(self.obs)
        t0 = time.perf_counter()
        self.obs = await client.step(action)
        dt = time.perf_counter() - t0
        if self.stats.measuring:
            self.stats.steps += 1
            self.stats.latencies.append(dt)
        return client.last_data


async def play_matches(url: str, index: int, stats: Stats, stop: asyncio.Event,
                       decided: list | None) -> None:
    """Play matches on one set of sockets until ``stop``: ``decided`` moves replayed (match k
    of this player is ``decided[(index + k) % len(decided)]``), or the baselines live."""
    clients = {r: await AsyncFraudArenaClient.open(url, r, obs_format="tensor_sparse")
               for r in ROLES}
    play = Replay(clients, stats)
    k = 0
    try:
        while not stop.is_set():
            k += 1
            if decided is None:
                data = await play_live(play, 1000 * index + k, stop)
            else:
                data = await play_decided(play, *decided[(index + k) % len(decided)], stop)
            if data["done"] and stats.measuring:
                stats.matches += 1
    except ServerError as exc:
        stats.errors.append(f"{exc.code}: {exc.message}")
    except Exception as exc:  # a dropped socket, a timeout, a replay out of step
        stats.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for c in clients.values():
            try:
                await c.close()
            except Exception:
                pass


async def play_live(play: Replay, seed: int, stop: asyncio.Event) -> dict:
    policies = baselines(seed)
    data = await play.start(seed)
    while not data["done"] and not stop.is_set():
        role = PHASE_ROLE[data["phase"]]
        data = await play.step(role, policies[role].act)
    return data


async def play_decided(play: Replay, seed: int, moves, returns, stop: asyncio.Event) -> dict:
    def legal(index: int):
        def decide(obs):
            if not obs["action_mask"][index]:
                raise RuntimeError(f"replay of seed {seed} out of step: action {index} is "
                                   "masked in the server's observation")
            return index
        return decide

    data = await play.start(seed)
    for role, index in moves:
        if stop.is_set():
            return data
        data = await play.step(role, legal(index))
    if not data["done"] or abs(data["reward"] - returns[ROLES.index(role)]) > 1e-5:
        raise RuntimeError(f"replay of seed {seed} ended otherwise than in process: done "
                           f"{data['done']}, {role} return {data['reward']} (expected "
                           f"{returns[ROLES.index(role)]})")
    return data


async def load(url: str, n: int, seconds: float, warmup: float, pid: int,
               decided: list | None) -> dict:
    gc.collect()
    gc.freeze()  # the client's own long-lived objects: out of the collector's way
    stats, stop = Stats(), asyncio.Event()
    tasks = [asyncio.create_task(play_matches(url, i + 1, stats, stop, decided))
             for i in range(n)]
    await asyncio.sleep(warmup)
    cpu0, own0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    stats.measuring = True
    await asyncio.sleep(seconds)
    stats.measuring = False
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    own = time.process_time() - own0
    stop.set()
    await asyncio.gather(*tasks)
    lat = np.asarray(stats.latencies) * 1000 if stats.latencies else np.zeros(1)
    return {"matches": n, "steps_per_s": stats.steps / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "server_cpu_us_per_step": 1e6 * cpu / max(stats.steps, 1),
            "client_cpu_us_per_step": 1e6 * own / max(stats.steps, 1),
            "finished_matches": stats.matches, "errors": stats.errors}


def idle_memory(port: int, pid: int, n: int, api_key: str) -> float:
    """Server RSS growth per idle match: created over REST, each observed once per role on
    the tensor face."""
    import httpx

    async def observe_all(ids_tokens):
        for match_id, tokens in ids_tokens:
            for role in ROLES:
                c = await AsyncFraudArenaClient.open(f"ws://127.0.0.1:{port}", role,
                                                     obs_format="tensor_sparse")
                await c.join(match_id, seat_token=tokens[role])
                await c.close()

    before = rss_bytes(pid)
    made = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                      headers={"X-API-Key": api_key}) as http:
        for k in range(n):
            reply = http.post("/api/v1/matches", json={"seed": 50_000 + k, "task_id": "task_3"})
            reply.raise_for_status()
            body = reply.json()
            made.append((body["match_id"], body["seat_tokens"]))
    run(observe_all(made))
    return (rss_bytes(pid) - before) / n


def run(coro):
    """``asyncio.run``, on uvloop when it is installed (the server extra brings it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matches", type=int, nargs="+", default=[50],
                        help="concurrent matches, one run per value (default 50)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured time per run")
    parser.add_argument("--idle", type=int, default=200,
                        help="idle matches for the memory figure (0: skip)")
    parser.add_argument("--seeds", type=int, default=64,
                        help="matches whose moves are decided before the run (default 64)")
    parser.add_argument("--in-memory", action="store_true",
                        help="serve with the store in memory (default: a temporary directory "
                        "on disk, journaled as a server is by default)")
    parser.add_argument("--live-policies", action="store_true",
                        help="decide every move during the run, in the client's event loop")
    args = parser.parse_args(argv)
    decided = None
    if not args.live_policies:
        t0 = time.perf_counter()
        decided = [(seed, *decide_match(seed)) for seed in range(1, args.seeds + 1)]
        print(f"decided {args.seeds} {TASK} matches in {time.perf_counter() - t0:.1f} s "
              f"({np.mean([len(d[1]) for d in decided]):.0f} steps each)")
    port = free_port()
    # A match whose sockets are moving on to their next match is live for a moment longer,
    # and a run's unfinished matches stay live (until the idle sweep) through the next runs.
    # Every socket comes from this one address: the per-address limits are lifted to fit it
    # (each run leaves its last matches unfinished; its sockets open at once, so no handshake
    # rate), the per-socket rate limit is the default. The idle matches are made with the API key.
    live = 2 * sum(args.matches) + args.idle + 16
    api_key = secrets.token_urlsafe(24)
    store = tempfile.TemporaryDirectory(prefix="fraudarena-bench-")  # on disk, as served
    proc = spawn(port, "--max-matches", str(live), "--max-matches-per-address", str(live),
                 "--max-connections-per-address", str(3 * max(args.matches) + 16),
                 "--abandon-rate", "0", "--api-key", api_key, "--http-rate-limit", "0",
                 *(("--in-memory",) if args.in_memory else ("--data-dir", store.name)))
    url = f"ws://127.0.0.1:{port}"
    results = {}
    try:
        if args.idle:
            per = idle_memory(port, proc.pid, args.idle, api_key)
            results["idle_bytes_per_match"] = per
            print(f"server memory per idle match: {per / 1024:.1f} KiB (RSS growth over "
                  f"{args.idle} matches, each joined by three tensor-face sockets)")
        print(f"{'matches':>8}{'steps/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'server CPU/step':>17}{'client CPU/step':>17}{'matches done':>14}{'errors':>8}")
        for n in args.matches:
            r = run(load(url, n, args.seconds, args.warmup, proc.pid, decided))
            results[n] = r
            print(f"{n:>8}{r['steps_per_s']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                  f"{r['server_cpu_us_per_step']:>14.0f} us{r['client_cpu_us_per_step']:>14.0f} us"
                  f"{r['finished_matches']:>14}"
                  f"{len(r['errors']):>8}")
            for e in r["errors"][:5]:
                print(f"    error: {e}")
    finally:
        proc.terminate()
        proc.wait(10)
        store.cleanup()
    return results


if __name__ == "__main__":
    main()
