"""Load benchmark of the WebSocket server: N concurrent matches, three sockets each.

The server runs in its own process (``python -m fraudarena_env.server``); this process is the
client. Each match is played by the scripted baselines on the tensor face (``tensor_sparse``
observations, ``action_index`` steps) over three sockets, one per role, and a new match is
started as soon as one ends. A step costs one ``step`` message, plus an ``obs`` message when the
turn passes to another role. Printed: aggregate steps/s, the p50/p99 latency of a step message
(send to reply), the server's CPU time per step (from /proc), errors, and the server's memory per
idle match (RSS growth over ``--idle`` matches created through the REST API and observed).

    python benchmarks/bench_server.py                     # 50 matches for 20 s
    python benchmarks/bench_server.py --matches 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import time

import numpy as np

from fraudarena_env.catalog import PHASE_ROLE, ROLES
from fraudarena_env.client import AsyncFraudArenaClient, ServerError
from fraudarena_env.policies import HeuristicAuditor, ReactiveFraudster, ScriptedInvestigator
from fraudarena_env.server import spawn


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


async def play_matches(url: str, index: int, stats: Stats, stop: asyncio.Event) -> None:
    clients = {r: await AsyncFraudArenaClient.open(url, r, obs_format="tensor_sparse")
               for r in ROLES}
    seed = 1000 * index
    try:
        while not stop.is_set():
            seed += 1
            policies = {"fraudster": ReactiveFraudster(seed=seed),
                        "investigator": ScriptedInvestigator(seed=seed),
                        "auditor": HeuristicAuditor(seed=seed)}
            obs = await clients["fraudster"].reset(seed=seed, task_id="task_3")
            match_id = clients["fraudster"].match_id
            for r in ("investigator", "auditor"):
                await clients[r].join(match_id)
            acting = "fraudster"
            data = clients["fraudster"].last_data
            while not data["done"] and not stop.is_set():
                role = PHASE_ROLE[data["phase"]]
                client = clients[role]
                if role != acting:
                    obs = await client.observe()
                    acting = role
                action = policies[role].act(obs)
                t0 = time.perf_counter()
                obs = await client.step(int(action))
                dt = time.perf_counter() - t0
                data = client.last_data
                if stats.measuring:
                    stats.steps += 1
                    stats.latencies.append(dt)
            if data["done"] and stats.measuring:
                stats.matches += 1
    except ServerError as exc:
        stats.errors.append(f"{exc.code}: {exc.message}")
    except Exception as exc:  # a dropped socket, a timeout
        stats.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for c in clients.values():
            try:
                await c.close()
            except Exception:
                pass


async def load(url: str, n: int, seconds: float, warmup: float, pid: int) -> dict:
    gc.collect()
    gc.freeze()  # the client's own long-lived objects: out of the collector's way
    stats, stop = Stats(), asyncio.Event()
    tasks = [asyncio.create_task(play_matches(url, i + 1, stats, stop)) for i in range(n)]
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


def idle_memory(port: int, pid: int, n: int) -> float:
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
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
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
    args = parser.parse_args(argv)
    port = free_port()
    # A match whose sockets are moving on to their next match is live for a moment longer.
    proc = spawn(port, "--max-matches", str(2 * max(args.matches) + args.idle + 16))
    url = f"ws://127.0.0.1:{port}"
    results = {}
    try:
        if args.idle:
            per = idle_memory(port, proc.pid, args.idle)
            results["idle_bytes_per_match"] = per
            print(f"server memory per idle match: {per / 1024:.1f} KiB (RSS growth over "
                  f"{args.idle} matches, each joined by three tensor-face sockets)")
        print(f"{'matches':>8}{'steps/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'server CPU/step':>17}{'client CPU/step':>17}{'matches done':>14}{'errors':>8}")
        for n in args.matches:
            r = run(load(url, n, args.seconds, args.warmup, proc.pid))
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
    return results


if __name__ == "__main__":
    main()
