#!/usr/bin/env python3
"""RQ on a local redis-server: the workloads of dilly-redis's `redis` bench.

One redis-server of its own (free loopback port, temporary directory, no
persistence) and two `rq worker` processes (RQ's default worker forks a work
horse per job), the counterpart of one dilly host with 2 worker processes.

* map: N tiny jobs (`double(x)`) enqueued at once with `enqueue_many`, until
  all have finished; reported as jobs per second;
* independent: N jobs enqueued one by one with `enqueue`, then each result
  awaited; jobs per second;
* sequential: one job at a time, enqueue then wait for its result with
  `latest_result(timeout=...)`; the median and p99 latency.

RQ runs a few hundred jobs per second here, so its job counts are smaller than
dilly's (100,000 and 10,000): the rates are what the report compares.

    bash benches/python/run.sh redis_rq.py --json out.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rq_tasks import double  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_all(jobs: list[Job], conn: Redis) -> None:
    ids = [j.id for j in jobs]
    pending = set(ids)
    while pending:
        statuses = Job.fetch_many(list(pending), connection=conn)
        for job in statuses:
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status == "finished":
                pending.discard(job.id)
            elif status == "failed":
                raise RuntimeError(f"job {job.id} failed")
        if pending:
            time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    map_jobs = 200 if args.quick else 2000
    independent_jobs = 200 if args.quick else 1000
    sequential_jobs = 30 if args.quick else 200

    port = free_port()
    tmp = tempfile.mkdtemp(prefix="dilly-rq-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    conn = Redis.from_url(url)
    for _ in range(500):
        try:
            conn.ping()
            break
        except Exception:
            time.sleep(0.02)
    env = dict(os.environ, PYTHONPATH=str(HERE))
    rq_bin = shutil.which("rq", path=str(Path(sys.executable).parent)) or "rq"
    workers = [
        subprocess.Popen([rq_bin, "worker", "--url", url, "--quiet", "bench"],
                         cwd=str(HERE), env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    out = {}
    try:
        q = Queue("bench", connection=conn)
        # Warm up: workers registered and a job through.
        wait_all([q.enqueue(double, 1)], conn)

        t = time.perf_counter()
        jobs = q.enqueue_many([Queue.prepare_data(double, (i,)) for i in range(map_jobs)])
        wait_all(jobs, conn)
        dt = time.perf_counter() - t
        out["map"] = {"jobs": map_jobs, "seconds": dt, "jobs_per_second": map_jobs / dt}
        print(f"rq map: {map_jobs} jobs in {dt:.2f} s = {map_jobs / dt:.0f} jobs/s", file=sys.stderr)

        t = time.perf_counter()
        jobs = [q.enqueue(double, i) for i in range(independent_jobs)]
        wait_all(jobs, conn)
        dt = time.perf_counter() - t
        out["independent"] = {"jobs": independent_jobs, "seconds": dt,
                              "jobs_per_second": independent_jobs / dt}
        print(f"rq independent: {independent_jobs} jobs in {dt:.2f} s", file=sys.stderr)

        lat = []
        for i in range(sequential_jobs):
            t = time.perf_counter()
            job = q.enqueue(double, i)
            result = job.latest_result(timeout=60)
            lat.append(time.perf_counter() - t)
            assert result is not None and result.return_value == 2 * i, result
        lat.sort()
        out["sequential"] = {
            "jobs": sequential_jobs,
            "median_us": statistics.median(lat) * 1e6,
            "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6,
        }
        print(f"rq sequential: median {out['sequential']['median_us']:.0f} us", file=sys.stderr)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.kill()
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    out["rq_version"] = __import__("rq").__version__
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
