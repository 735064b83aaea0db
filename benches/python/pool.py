#!/usr/bin/env python3
"""Python's process pools on the workloads of dilly-pool's benchmark (benches/pool.rs).

Tools, all with 2 worker processes:

* mp_fork, mp_spawn, mp_forkserver -- multiprocessing.Pool with that start method
  (mp_forkserver only for pool start);
* cf -- concurrent.futures.ProcessPoolExecutor (its default context: fork on Linux
  with Python 3.11);
* pathos -- pathos.pools.ProcessingPool (multiprocess + dill, fork);
* loky -- loky.ProcessPoolExecutor (loky's own spawn-like start, cloudpickle).

Workloads (same as the Rust bench):

* throughput_default -- map(double, range(100_000)) with the tool's own default
  chunking (multiprocessing / pathos: chunksize=None, i.e. len / (4 * workers);
  ProcessPoolExecutor and loky: chunksize=1, their default);
* throughput_chunk1 -- map(double, range(20_000)) with chunksize=1;
* round_trip -- 2,000 sequential apply(double, (x,)) (or submit(double, x).result())
  on a warm pool, each timed alone: median and p99;
* payload, payload_chunk1 -- map(identity, 64 x 1 MiB bytes) with default chunking
  and with chunksize=1 (multiprocessing's best), MiB/s of input;
* pool_start -- create the pool + the first apply result (fork, spawn and
  forkserver for multiprocessing; each other tool's default). Tear-down is not timed.
* long_sleep_equal, long_sleep_mixed, long_spin_equal, long_spin_mixed -- the
  makespan of map over long tasks on 4 workers (mp_fork, cf and loky only), each
  tool's default chunking: 8 x 200 ms, and a mix of 50-400 ms (1,800 ms of work),
  of tasks that sleep or that keep a CPU busy for that long; median of 3 maps
  after a warm-up (as LONG_WORKLOADS in benches/pool.rs).

Usage (normally through run.sh, which provides pathos and loky in a venv):

    bash benches/python/run.sh pool.py [--quick] [--json PATH] [--only TOOL,...]

Every figure is a median over repetitions (timed with time.perf_counter_ns); the
number of repetitions adapts so slow cases stay short. --quick shrinks the
repetitions and item counts (a smoke test; its numbers are not for the docs).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time

try:
    import loky
    from pathos.multiprocessing import ProcessingPool
except ImportError as exc:  # pragma: no cover - guidance only
    sys.exit(f"{exc}; run this through benches/python/run.sh, which installs requirements.txt")

WORKERS = 2
TINY_ITEMS = 100_000
TINY_ITEMS_CHUNK1 = 20_000
LATENCY_CALLS = 2_000
LATENCY_WARMUP = 200
PAYLOAD_ITEMS = 64
PAYLOAD_LEN = 1 << 20


LONG_WORKERS = 4
LONG_REPS = 3
LONG_MIX = [400, 50, 300, 100, 250, 150, 350, 200]
# name -> (spins, task lengths in ms), as LONG_WORKLOADS in benches/pool.rs.
LONG_WORKLOADS = {
    "long_sleep_equal": (False, [200] * 8),
    "long_sleep_mixed": (False, LONG_MIX),
    "long_spin_equal": (True, [200] * 8),
    "long_spin_mixed": (True, LONG_MIX),
}
# Tools measured on the long tasks.
LONG_TOOLS = ["mp_fork", "cf", "loky"]


def sleep_ms(ms):
    """A long task that sleeps."""
    time.sleep(ms / 1000)
    return ms


def spin_ms(ms):
    """A long task that keeps a CPU busy for ms milliseconds of wall time."""
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass
    return ms


def double(x):
    """The tiny task."""
    return x * 2


def identity(data):
    """The large-payload task."""
    return data


# ---------------------------------------------------------------------------------------
# Tools: a uniform face over each pool.
# ---------------------------------------------------------------------------------------

class MpPool:
    """multiprocessing.Pool with a start method."""

    default_chunk = None  # multiprocessing picks len / (4 * workers)

    def __init__(self, method, workers=WORKERS):
        self.pool = multiprocessing.get_context(method).Pool(workers)

    def map(self, f, items, chunksize=None):
        return self.pool.map(f, items, chunksize)

    def apply(self, f, x):
        return self.pool.apply(f, (x,))

    def close(self):
        self.pool.terminate()
        self.pool.join()


class CfPool:
    """concurrent.futures.ProcessPoolExecutor (default context)."""

    default_chunk = 1

    def __init__(self, workers=WORKERS):
        self.pool = concurrent.futures.ProcessPoolExecutor(workers)

    def map(self, f, items, chunksize=None):
        return list(self.pool.map(f, items, chunksize=chunksize or 1))

    def apply(self, f, x):
        return self.pool.submit(f, x).result()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class PathosPool:
    """pathos.pools.ProcessingPool; pathos caches pools, so close() clears it."""

    default_chunk = None

    def __init__(self):
        self.pool = ProcessingPool(nodes=WORKERS)

    def map(self, f, items, chunksize=None):
        if chunksize is None:
            return self.pool.map(f, items)
        return self.pool.map(f, items, chunksize=chunksize)

    def apply(self, f, x):
        return self.pool.pipe(f, x)

    def close(self):
        self.pool.terminate()
        self.pool.join()
        self.pool.clear()


class LokyPool:
    """loky.ProcessPoolExecutor (not the reusable singleton, so start is measured)."""

    default_chunk = 1

    def __init__(self, workers=WORKERS):
        self.pool = loky.ProcessPoolExecutor(max_workers=workers)

    def map(self, f, items, chunksize=None):
        return list(self.pool.map(f, items, chunksize=chunksize or 1))

    def apply(self, f, x):
        return self.pool.submit(f, x).result()

    def close(self):
        self.pool.shutdown(wait=True, kill_workers=True)


TOOLS = {
    "mp_fork": lambda workers=WORKERS: MpPool("fork", workers),
    "mp_spawn": lambda workers=WORKERS: MpPool("spawn", workers),
    "mp_forkserver": lambda workers=WORKERS: MpPool("forkserver", workers),
    "cf": CfPool,
    "pathos": PathosPool,
    "loky": LokyPool,
}
# Tools measured on every workload; mp_forkserver only on pool start.
FULL_TOOLS = ["mp_fork", "mp_spawn", "cf", "pathos", "loky"]


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("pathos", "multiprocess", "dill", "loky", "cloudpickle"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # pragma: no cover - report only
            out[name] = None
    return out


# ---------------------------------------------------------------------------------------
# Measurements.
# ---------------------------------------------------------------------------------------

def repeat(fn, min_reps, max_reps, budget_s):
    """Times fn() at least min_reps and at most max_reps times, stopping after
    budget_s once min_reps are done; returns the list of seconds."""
    times = []
    started = time.perf_counter()
    while len(times) < max_reps:
        t = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t) / 1e9)
        if len(times) >= min_reps and time.perf_counter() - started > budget_s:
            break
    return times


def measure_throughput(pool, n, chunksize, reps):
    expected = [x * 2 for x in range(n)]
    assert pool.map(double, range(n), chunksize) == expected  # warm-up + check
    times = repeat(lambda: pool.map(double, range(n), chunksize), 1, reps, 4.0)
    sec = statistics.median(times)
    return {"items": n, "chunksize": chunksize, "seconds": sec, "tasks_per_s": n / sec,
            "repetitions": len(times)}


def measure_round_trip(pool, calls, warmup):
    for i in range(warmup):
        assert pool.apply(double, i) == i * 2
    ns = []
    for i in range(calls):
        t = time.perf_counter_ns()
        r = pool.apply(double, i)
        ns.append(time.perf_counter_ns() - t)
        assert r == i * 2
    ns.sort()

    def q(p):  # nearest rank, as in the Rust bench
        rank = min(max(int(-(-p * len(ns) // 1)), 1), len(ns))
        return ns[rank - 1]

    return {"calls": calls, "median_ns": q(0.5), "p99_ns": q(0.99),
            "mean_ns": sum(ns) / len(ns), "min_ns": ns[0], "max_ns": ns[-1]}


def measure_payload(pool, items, chunksize, reps):
    out = pool.map(identity, items, chunksize)  # warm-up + check
    assert len(out) == len(items) and out[0] == items[0] and out[-1] == items[-1]
    del out
    times = repeat(lambda: pool.map(identity, items, chunksize), 2, reps, 4.0)
    sec = statistics.median(times)
    total = sum(len(b) for b in items)
    return {"items": len(items), "item_bytes": len(items[0]), "chunksize": chunksize,
            "seconds": sec, "mib_per_s": total / (1 << 20) / sec, "repetitions": len(times)}


def measure_long(pool, spins, lengths, reps):
    f = spin_ms if spins else sleep_ms
    assert pool.map(f, lengths, None) == lengths  # warm-up + check
    times = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        out = pool.map(f, lengths, None)
        times.append((time.perf_counter_ns() - t) / 1e9)
        assert out == lengths
    return {"tasks_ms": lengths, "workers": LONG_WORKERS, "seconds": statistics.median(times),
            "min_seconds": min(times), "repetitions": len(times)}


def measure_start(make, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        pool = make()
        r = pool.apply(double, 21)
        times.append((time.perf_counter_ns() - t) / 1e9)
        assert r == 42
        pool.close()
    return {"seconds": statistics.median(times), "min_seconds": min(times),
            "repetitions": len(times)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: fewer items and reps")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--only", metavar="TOOLS",
                    help="comma-separated subset of " + ",".join(TOOLS))
    opts = ap.parse_args(argv)

    quick = opts.quick
    tiny = TINY_ITEMS // 10 if quick else TINY_ITEMS
    tiny1 = TINY_ITEMS_CHUNK1 // 10 if quick else TINY_ITEMS_CHUNK1
    calls = LATENCY_CALLS // 10 if quick else LATENCY_CALLS
    warmup = LATENCY_WARMUP // 10 if quick else LATENCY_WARMUP
    reps = 2 if quick else 5
    start_reps = 2 if quick else 7
    only = set(opts.only.split(",")) if opts.only else set(TOOLS)
    unknown = only - set(TOOLS)
    if unknown:
        ap.error(f"unknown tools: {', '.join(sorted(unknown))}")

    payload = [bytes([i]) * PAYLOAD_LEN for i in range(PAYLOAD_ITEMS)]
    results = []

    def record(workload, tool, **fields):
        results.append({"workload": workload, "tool": tool, **fields})
        shown = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in fields.items()}
        print(f"{workload:<18} {tool:<14} {shown}", file=sys.stderr, flush=True)

    # Pool start first, each method in a fresh pool.
    for tool in ["mp_fork", "mp_spawn", "mp_forkserver", "cf", "pathos", "loky"]:
        if tool in only:
            record("pool_start", tool, **measure_start(TOOLS[tool], start_reps))

    for tool in FULL_TOOLS:
        if tool not in only:
            continue
        pool = TOOLS[tool]()
        try:
            pool.apply(double, 1)  # all workers up
            record("throughput_default", tool,
                   **measure_throughput(pool, tiny, None, reps))
            record("throughput_chunk1", tool, **measure_throughput(pool, tiny1, 1, reps))
            record("round_trip", tool, **measure_round_trip(pool, calls, warmup))
            record("payload", tool, **measure_payload(pool, payload, None, reps))
            if pool.default_chunk != 1:
                record("payload_chunk1", tool, **measure_payload(pool, payload, 1, reps))
        finally:
            pool.close()

    for tool in LONG_TOOLS:
        if tool not in only:
            continue
        pool = TOOLS[tool](LONG_WORKERS)
        try:
            for workload, (spins, lengths) in LONG_WORKLOADS.items():
                record(workload, tool,
                       **measure_long(pool, spins, lengths, 1 if quick else LONG_REPS))
        finally:
            pool.close()

    doc = {
        "workload": "pool",
        "workers": WORKERS,
        "python": sys.version.split()[0],
        "versions": versions(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "results": results,
    }
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        print(f"results written to {opts.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
