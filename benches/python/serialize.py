#!/usr/bin/env python3
"""Round-trip cost of shipping a callable with Python's tools: dill, cloudpickle, pickle.

For each of four kinds of callable -- free function, nested function, bound method of a
locally defined class, closure -- and each tool that can handle it, this measures

    loads(dumps(f))(*args)          # must return 42

as the median wall time per round trip (ns), and the payload size len(dumps(f)) in bytes.
The Rust criterion benchmark (benches/) does the same work with dilly, so the two can be
put side by side (benches/compare.sh).

Usage (normally through run.sh, which provides dill and cloudpickle in a venv):

    bash benches/python/run.sh serialize.py [--quick] [--json PATH]

Method: each measurement warms up, then calibrates a batch size so one batch of round trips
takes about BATCH_TARGET_NS, then times SAMPLES batches with time.perf_counter_ns. The
reported figure is the median over batches of (batch time / batch size). The garbage
collector stays enabled (as in real use); its cost is amortized inside each batch.
Each tool is used with its default settings (dill: protocol 4, byref=False, recurse=False;
cloudpickle: protocol 5; pickle: protocol 4).

Note: this script runs as __main__, so dill and cloudpickle serialize even the module-level
`double` *by value* (its code object travels), while pickle stores only the reference
`__main__.double` -- which works only because the receiver here is the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import sys
import time

try:
    import cloudpickle
    import dill
except ImportError as exc:  # pragma: no cover - guidance only
    sys.exit(f"{exc}; run this through benches/python/run.sh, which installs requirements.txt")

EXPECTED = 42

# Full run: 9 measurements x (0.2 s warm-up + 300 x 3 ms) ~= 10 s on a 2-core machine.
WARMUP_NS = 200_000_000
BATCH_TARGET_NS = 3_000_000
SAMPLES = 300
QUICK_FACTOR = 10  # --quick divides warm-up time and sample count by this


# ---------------------------------------------------------------------------------------
# The four callables. Semantics must match the Rust benchmark exactly.
# ---------------------------------------------------------------------------------------

def double(x):
    """free_fn: module-level function; double(21) == 42."""
    return x * 2


def outer():
    """nested_fn: returns the nested function; triple(14) == 42."""
    def triple(x):
        return x * 3
    return triple


def make_bound_method():
    """bound_method: a method of a class defined *inside a function* (pickle cannot do
    this); Transformer(1).process_data(6, 7) == 42."""
    class Transformer:
        def __init__(self, factor):
            self.factor = factor

        def process_data(self, x, y):
            return x * y

    t = Transformer(1)
    return t.process_data


def make_closure():
    """closure: a lambda capturing a list and an int (real closure cells, not globals);
    f(29) == 29 + 10 + 3 == 42."""
    names = ["alpha", "beta", "gamma"]
    offset = 10
    f = lambda x: x + offset + len(names)  # noqa: E731 - a lambda is the point
    return f


CASES = [
    # (kind, callable, args)
    ("free_fn", double, (21,)),
    ("nested_fn", outer(), (14,)),
    ("bound_method", make_bound_method(), (6, 7)),
    ("closure", make_closure(), (29,)),
]

TOOLS = [
    # (tool, dumps, loads, kinds it is measured on)
    ("dill", dill.dumps, dill.loads, None),
    ("cloudpickle", cloudpickle.dumps, cloudpickle.loads, None),
    ("pickle", pickle.dumps, pickle.loads, {"free_fn"}),
]


# ---------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------

class WrongResult(Exception):
    pass


def run_batch(dumps, loads, f, args, n):
    """Time n round trips; return elapsed ns. Every result is checked."""
    perf = time.perf_counter_ns
    t0 = perf()
    for _ in range(n):
        r = loads(dumps(f))(*args)
        if r != EXPECTED:
            raise WrongResult(r)
    return perf() - t0


def measure(dumps, loads, f, args, warmup_ns, samples):
    # Warm-up, which also estimates the cost of one round trip.
    n, elapsed, batch = 0, 0, 1
    while elapsed < warmup_ns or n < 10:
        elapsed += run_batch(dumps, loads, f, args, batch)
        n += batch
        batch = min(batch * 2, 1024)
    per_iter = elapsed / n
    batch = max(1, round(BATCH_TARGET_NS / per_iter))

    per_rt = [run_batch(dumps, loads, f, args, batch) / batch for _ in range(samples)]
    return statistics.median(per_rt), batch * samples


def check_once(kind, tool, dumps, loads, f, args):
    try:
        result = loads(dumps(f))(*args)
    except Exception as exc:  # noqa: BLE001 - report and fail
        sys.exit(f"FAIL: {tool} round trip of {kind} raised {type(exc).__name__}: {exc}")
    if result != EXPECTED:
        sys.exit(f"FAIL: {tool} round trip of {kind} returned {result!r}, expected {EXPECTED}")


def pickle_fails_section():
    """Show what std pickle says about the three kinds it cannot serialize."""
    lines = ["pickle (stdlib) on the other kinds -- why dill/cloudpickle exist:"]
    width = max(len(k) for k, _, _ in CASES)
    for kind, f, _ in CASES:
        if kind == "free_fn":
            payload = pickle.dumps(f)
            msg = (f"ok, but by reference only: {len(payload)} bytes naming "
                   f"{f.__module__}.{f.__qualname__} (receiver must be able to import it)")
        else:
            try:
                pickle.dumps(f)
                msg = "unexpectedly succeeded"
            except Exception as exc:  # noqa: BLE001 - the exception *is* the output
                msg = f"{type(exc).__name__}: {exc}"
        lines.append(f"  {kind:<{width}}  {msg}")
    return "\n".join(lines)


def format_table(results):
    headers = ["kind", "tool", "round trip (ns, median)", "payload (bytes)"]
    rows = [[r["kind"], r["tool"], f"{r['round_trip_ns']:,.0f}", f"{r['payload_bytes']:,}"]
            for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    right = [False, False, True, True]

    def fmt(cells):
        return " | ".join(c.rjust(w) if r else c.ljust(w)
                          for c, w, r in zip(cells, widths, right)).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(headers), sep, *(fmt(row) for row in rows)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH")
    ap.add_argument("--quick", action="store_true",
                    help=f"~{QUICK_FACTOR}x fewer iterations (smoke test; numbers are noisier)")
    opts = ap.parse_args(argv)

    warmup_ns = WARMUP_NS // (QUICK_FACTOR if opts.quick else 1)
    samples = SAMPLES // (QUICK_FACTOR if opts.quick else 1)

    versions = {
        "dill": dill.__version__,
        "cloudpickle": cloudpickle.__version__,
        "pickle": f"stdlib (python {platform.python_version()})",
    }
    print(f"python {platform.python_version()} ({platform.python_implementation()}, "
          f"{platform.machine()}), dill {versions['dill']}, cloudpickle {versions['cloudpickle']}"
          f"{', QUICK mode' if opts.quick else ''}")
    print()

    # Correctness first: every (kind, tool) pair we time must round-trip to 42.
    plan = []
    for kind, f, args in CASES:
        for tool, dumps, loads, only in TOOLS:
            if only is not None and kind not in only:
                continue
            check_once(kind, tool, dumps, loads, f, args)
            plan.append((kind, tool, dumps, loads, f, args))

    results = []
    started = time.perf_counter()
    for kind, tool, dumps, loads, f, args in plan:
        try:
            median_ns, iterations = measure(dumps, loads, f, args, warmup_ns, samples)
        except WrongResult as exc:
            sys.exit(f"FAIL: {tool} round trip of {kind} returned {exc.args[0]!r}, "
                     f"expected {EXPECTED}")
        results.append({
            "kind": kind,
            "tool": tool,
            "round_trip_ns": round(median_ns, 1),
            "payload_bytes": len(dumps(f)),
            "iterations": iterations,
        })
        print(f"  measured {kind:<12} {tool:<11} {median_ns:>12,.0f} ns", file=sys.stderr)
    elapsed = time.perf_counter() - started

    print(format_table(results))
    print()
    print(f"{len(results)} measurements in {elapsed:.1f} s; round trip = loads(dumps(f))(*args) "
          f"== {EXPECTED}, median of {samples} batches each.")
    print()
    print(pickle_fails_section())

    if opts.json:
        doc = {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "quick": opts.quick,
            "versions": versions,
            "protocols": {
                "dill": dill.settings["protocol"],
                "cloudpickle": cloudpickle.DEFAULT_PROTOCOL,
                "pickle": pickle.DEFAULT_PROTOCOL,
            },
            "results": results,
        }
        with open(opts.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        print(f"\nwrote {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
