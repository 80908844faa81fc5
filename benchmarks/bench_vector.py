"""Throughput of ``VectorFraudArena`` against the scalar shared-space env, in the same process.

What is timed, on both: masked-random play (one uniformly random legal action per agent step),
with the observation and the mask of every step, and a new match whenever one ends. The scalar
env is ``shared_space_env`` (the layout the vector env returns) driven through ``observe``,
``step`` and ``reset``, without the AEC iterator's dead steps; the vector env steps N matches per
call with ``copy=False`` (its own buffers, as a training loop that reads each batch once would
use it) and draws its actions with ``sample_actions``; it is timed after 30 untimed steps, so the
matches have spread over their rounds as they do in a long run. An agent step is one action of one
match. Rates are per second of this process's CPU time (on an idle machine, the wall clock's),
so other work on a busy machine disturbs them less; the ratio to the scalar env is the figure to
compare across runs and machines.

    python benchmarks/bench_vector.py                 # N = 1, 64, 1024, 4096; ~3 s each
    python benchmarks/bench_vector.py --envs 1024 --seconds 1
    python benchmarks/bench_vector.py --envs --seats 256   # one role's seat only (make_vec)
    python benchmarks/bench_vector.py --envs --seats 1024 --workers 2   # ... also in 2 workers

``--fixed STEPS`` times a fixed workload instead, to compare two versions of the code on a machine
whose speed drifts (a rate over a few seconds moves with it): for each N, ``reset(seed=0)`` and
STEPS steps of ``sample_actions`` (the same matches and actions every time), best of
``--repeats`` runs in CPU seconds; run it with each version in turn, several times.

    python benchmarks/bench_vector.py --envs 64 1024 --fixed 150

``--seats N`` times one learning role's seat instead, as a Gymnasium loop meets it: learner steps
per second of masked-random play in ``gymnasium.make_vec(role id, num_envs=N)`` (the batched
``RoleVectorEnv``, opponents moving in batch) against ``vectorization_mode="sync"`` (Gymnasium's
``SyncVectorEnv`` of ``SYNC_ENVS`` ``RoleEnv``s, its own autoresets), for the investigator and the
fraudster, the scripted baselines as opponents.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fraudarena_env.vector import VectorFraudArena
from fraudarena_env.wrappers import shared_space_env


def scalar_steps_per_second(task_id: str, seconds: float, seed: int = 0) -> float:
    env = shared_space_env(task_id=task_id)
    rng = np.random.default_rng(seed)
    episode = seed
    env.reset(seed=episode)
    steps = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            episode += 1
            env.reset(seed=episode)
            continue
        legal = np.flatnonzero(env.observe(agent)["action_mask"])
        env.step(int(legal[rng.integers(len(legal))]))
        steps += 1
    return steps / (time.process_time() - start)


def vector_steps_per_second(task_id: str, num_envs: int, seconds: float,
                            seed: int = 0, warmup: int = 30) -> float:
    venv = VectorFraudArena(num_envs, task_id=task_id, copy=False)
    batch = venv.reset(seed=seed)
    for _ in range(warmup):  # past the first round, where every env starts in lockstep
        batch = venv.step(venv.sample_actions(batch.action_mask))
    steps = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        batch = venv.step(venv.sample_actions(batch.action_mask))
        steps += num_envs
    return steps / (time.process_time() - start)


def fixed_workload_seconds(task_id: str, num_envs: int, steps: int, repeats: int) -> float:
    """The best of ``repeats`` CPU times of the same ``steps`` vector steps from seed 0."""
    best = float("inf")
    for _ in range(repeats):
        venv = VectorFraudArena(num_envs, task_id=task_id, copy=False)
        batch = venv.reset(seed=0)
        start = time.process_time()
        for _ in range(steps):
            batch = venv.step(venv.sample_actions(batch.action_mask))
        best = min(best, time.process_time() - start)
    return best


def run_fixed(task_id: str, envs, steps: int, repeats: int) -> dict:
    print(f"== vector env: a fixed workload on {task_id}, {steps} steps from seed 0, best of "
          f"{repeats} ==")
    print(f"{'env':<36}{'CPU s':>10}{'agent-steps/s':>15}")
    results = {}
    for n in envs:
        seconds = fixed_workload_seconds(task_id, n, steps, repeats)
        results[n] = seconds
        print(f"{f'VectorFraudArena(num_envs={n})':<36}{seconds:>10.3f}"
              f"{n * steps / seconds:>15,.0f}")
    return results


SYNC_ENVS = 16
SEAT_ROLES = ("investigator", "fraudster")


def seat_steps_per_second(role: str, task_id: str, num_envs: int, mode: str, seconds: float,
                          seed: int = 0, workers: int = 1) -> float:
    """Learner steps a second of masked-random play in ``make_vec``'s env for ``role``: per
    second of this process's CPU time, or with ``workers`` above 1 (the batched seat in worker
    processes, whose CPU time this process's does not count) of the wall clock."""
    import gymnasium

    from fraudarena_env.registration import GYMNASIUM_IDS

    extra = {"workers": workers} if workers > 1 else {}
    envs = gymnasium.make_vec(GYMNASIUM_IDS[role], num_envs=num_envs, task_id=task_id,
                              vectorization_mode=mode, **extra)
    clock = time.perf_counter if workers > 1 else time.process_time
    envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    steps = 0
    start = clock()
    while clock() - start < seconds:
        masks = np.stack(envs.call("action_masks"))
        envs.step((rng.random(masks.shape) * masks).argmax(axis=1))
        steps += num_envs
    rate = steps / (clock() - start)
    envs.close()
    return rate


def run_seats(task_id: str, num_envs: int, seconds: float, workers: int = 1) -> dict:
    print(f"== one role's seat: make_vec, masked-random play on {task_id}, ~{seconds:g} s each ==")
    split = f"{workers} workers (wall)"
    print(f"{'role':<14}{f'sync ({SYNC_ENVS} RoleEnvs)':>22}{f'batched (N={num_envs})':>20}"
          f"{'ratio':>8}" + (f"{split:>22}{'ratio':>8}" if workers > 1 else ""))
    results = {}
    for role in SEAT_ROLES:
        sync = seat_steps_per_second(role, task_id, SYNC_ENVS, "sync", seconds)
        batched = seat_steps_per_second(role, task_id, num_envs, "vector_entry_point", seconds)
        results[role] = (sync, batched)
        line = f"{role:<14}{sync:>22,.0f}{batched:>20,.0f}{batched / sync:>8.2f}"
        if workers > 1:
            shared = seat_steps_per_second(role, task_id, num_envs, "vector_entry_point",
                                           seconds, workers=workers)
            results[role] += (shared,)
            line += f"{shared:>22,.0f}{shared / sync:>8.2f}"
        print(line)
    return results


def run(task_id: str = "task_3", envs=(1, 64, 1024, 4096), seconds: float = 3.0) -> dict:
    print(f"== vector env: masked-random play on {task_id}, ~{seconds:g} s each ==")
    scalar = scalar_steps_per_second(task_id, seconds)
    results = {"scalar": scalar}
    print(f"{'env':<36}{'agent-steps/s':>15}{'vs scalar':>11}")
    print(f"{'shared_space_env (scalar)':<36}{scalar:>15,.0f}{1.0:>11.2f}")
    for n in envs:
        rate = vector_steps_per_second(task_id, n, seconds)
        results[n] = rate
        print(f"{f'VectorFraudArena(num_envs={n})':<36}{rate:>15,.0f}{rate / scalar:>11.2f}")
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="task_3")
    parser.add_argument("--envs", type=int, nargs="*", default=[1, 64, 1024, 4096],
                        help="batch sizes of the vector env table (none: no table)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seats", type=int, metavar="N",
                        help="also time one role's seat in gymnasium.make_vec: N matches batched "
                        f"against SyncVectorEnv of {SYNC_ENVS} RoleEnvs")
    parser.add_argument("--workers", type=int, default=1, metavar="W",
                        help="with --seats: also time the batched seat split among W worker "
                        "processes (learner steps per second of wall clock)")
    parser.add_argument("--fixed", type=int, metavar="STEPS",
                        help="time a fixed workload of STEPS steps per batch size instead (best "
                        "of --repeats): for comparing versions of the code")
    parser.add_argument("--repeats", type=int, default=4, help="with --fixed (default 4)")
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.workers > 1 and not args.seats):
        parser.error("--workers needs --seats N and is at least 1")
    if args.fixed is not None and (args.fixed < 1 or args.repeats < 1 or not args.envs):
        parser.error("--fixed needs a positive number of steps, --repeats at least 1 and "
                     "some --envs")
    if args.fixed:
        return run_fixed(args.task, args.envs, args.fixed, args.repeats)
    results = run(args.task, args.envs, args.seconds) if args.envs else {}
    if args.seats:
        results["seats"] = run_seats(args.task, args.seats, args.seconds, args.workers)
    return results


if __name__ == "__main__":
    main()
