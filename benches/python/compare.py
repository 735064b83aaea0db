#!/usr/bin/env python3
"""Put dilly's criterion results next to the Python (dill / cloudpickle / pickle) ones.

Standard library only. Normally run by benches/compare.sh, after it has run the
criterion benchmark and the Python script for a workload:

    python3 benches/python/compare.py serialize --target-dir target

Inputs, for the `serialize` workload (all under the cargo target directory):

* criterion/serialize/<tool>/<kind>/new/{benchmark,estimates}.json -- written by
  `cargo bench --bench serialize`; the time used is the median's point estimate (ns);
* dilly-bench/serialize-sizes.json -- payload sizes, written by the same bench;
* dilly-bench/python-serialize.json -- written by `run.sh serialize.py --json ...`.

Output: one markdown table on stdout, then one line per target of issue 2 saying
whether it is met. Exit status 0 even when a target is missed (the table is the
report); 2 when an input is missing.

Adding a workload (e.g. `pool`) means writing one `report_<name>(target_dir)` function
that returns the markdown text and listing it in WORKLOADS; the loaders below are
shared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KINDS = ["free_fn", "nested_fn", "bound_method", "closure"]


class MissingInput(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Shared loaders
# ---------------------------------------------------------------------------------------

def load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise MissingInput(f"missing {path}") from None


def criterion_medians(target_dir: Path, group: str) -> dict[tuple[str, str], float]:
    """Median point estimates (ns) of one criterion group, keyed by
    (function id, parameter), e.g. ("dilly", "free_fn").

    Reads each benchmark's own benchmark.json for its ids rather than trusting
    directory names (criterion sanitizes those)."""
    root = target_dir / "criterion"
    out: dict[tuple[str, str], float] = {}
    for bench_json in sorted(root.glob("*/*/*/new/benchmark.json")) + sorted(
            root.glob("*/*/new/benchmark.json")):
        meta = load_json(bench_json)
        if meta.get("group_id") != group:
            continue
        estimates = load_json(bench_json.parent / "estimates.json")
        key = (meta.get("function_id") or "", meta.get("value_str") or "")
        out[key] = float(estimates["median"]["point_estimate"])
    if not out:
        raise MissingInput(f"no criterion results for group {group!r} under {root}")
    return out


def python_results(path: Path) -> tuple[dict, dict[tuple[str, str], dict]]:
    """The Python JSON document and its results keyed by (tool, kind)."""
    doc = load_json(path)
    return doc, {(r["tool"], r["kind"]): r for r in doc["results"]}


def markdown_table(headers: list[str], rows: list[list[str]], right: list[bool]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                 for c, w, r in zip(cells, widths, right)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                         for w, r in zip(widths, right)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "—"
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:,.1f}"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}×" if x >= 100 else f"{x:,.2f}×" if x < 10 else f"{x:,.1f}×"


def fmt_int(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


# ---------------------------------------------------------------------------------------
# Workload: serialize
# ---------------------------------------------------------------------------------------

def report_serialize(target_dir: Path) -> str:
    bench = target_dir / "dilly-bench"
    rust_ns = criterion_medians(target_dir, "serialize")
    sizes_doc = load_json(bench / "serialize-sizes.json")
    sizes = {(s["tool"], s["kind"]): int(s["payload_bytes"]) for s in sizes_doc["sizes"]}
    py_doc, py = python_results(bench / "python-serialize.json")

    def py_ns(tool, kind):
        r = py.get((tool, kind))
        return None if r is None else float(r["round_trip_ns"])

    def py_bytes(tool, kind):
        r = py.get((tool, kind))
        return None if r is None else int(r["payload_bytes"])

    headers = ["kind", "dilly ns", "serde_closure ns", "cloudpickle ns", "dill ns",
               "cloudpickle / dilly", "dilly / serde_closure", "dilly bytes", "dill bytes",
               "pickle bytes", "dill bytes / dilly bytes"]
    right = [False] + [True] * (len(headers) - 1)
    rows = []
    per_kind = {}
    for kind in KINDS:
        d_ns = rust_ns.get(("dilly", kind))
        s_ns = rust_ns.get(("serde_closure", kind))
        c_ns = py_ns("cloudpickle", kind)
        dill_ns = py_ns("dill", kind)
        d_b = sizes.get(("dilly", kind))
        dill_b = py_bytes("dill", kind)
        pickle_b = py_bytes("pickle", kind) if kind == "free_fn" else None
        per_kind[kind] = dict(dilly_ns=d_ns, sc_ns=s_ns, cp_ns=c_ns, dill_ns=dill_ns,
                              dilly_b=d_b, dill_b=dill_b, pickle_b=pickle_b)
        rows.append([f"`{kind}`", fmt_ns(d_ns), fmt_ns(s_ns), fmt_ns(c_ns), fmt_ns(dill_ns),
                     fmt_ratio(ratio(c_ns, d_ns)), fmt_ratio(ratio(d_ns, s_ns)),
                     fmt_int(d_b), fmt_int(dill_b), fmt_int(pickle_b),
                     fmt_ratio(ratio(dill_b, d_b))])

    out = [markdown_table(headers, rows, right), ""]
    sc_sizes = ", ".join(f"{k} {sizes[('serde_closure', k)]}" for k in KINDS
                         if ("serde_closure", k) in sizes)
    if sc_sizes:
        out.append(f"serde_closure payload bytes (bincode 2, standard config): {sc_sizes}.")
    if py_doc.get("quick"):
        out.append("Python numbers are from a --quick run (noisier).")
    out.append("")

    # Targets of issue 2.
    def all_ok(pred, kinds):
        vals = [pred(per_kind[k]) for k in kinds]
        return None if any(v is None for v in vals) else all(vals)

    def cmp(f):
        def pred(m):
            try:
                return f(m)
            except TypeError:  # a missing number
                return None
        return pred

    targets = [
        ("round trip ≥ 100× faster than cloudpickle (all kinds)",
         all_ok(cmp(lambda m: m["cp_ns"] / m["dilly_ns"] >= 100), KINDS),
         "min " + fmt_ratio(min((ratio(per_kind[k]["cp_ns"], per_kind[k]["dilly_ns"]) or 0)
                                for k in KINDS))),
        ("round trip within 2× of serde_closure (all kinds)",
         all_ok(cmp(lambda m: m["dilly_ns"] <= 2 * m["sc_ns"]), KINDS),
         "max " + fmt_ratio(max((ratio(per_kind[k]["dilly_ns"], per_kind[k]["sc_ns"]) or 0)
                                for k in KINDS))),
        ("payload ≤ 1/10 of dill's (closure, nested fn, bound method)",
         all_ok(cmp(lambda m: m["dilly_b"] * 10 <= m["dill_b"]),
                ["nested_fn", "bound_method", "closure"]),
         "min " + fmt_ratio(min((ratio(per_kind[k]["dill_b"], per_kind[k]["dilly_b"]) or 0)
                                for k in ["nested_fn", "bound_method", "closure"]))),
        ("free fn payload ≤ pickle's by-reference payload",
         cmp(lambda m: m["dilly_b"] <= m["pickle_b"])(per_kind["free_fn"]),
         f"{fmt_int(per_kind['free_fn']['dilly_b'])} vs "
         f"{fmt_int(per_kind['free_fn']['pickle_b'])} bytes"),
    ]
    out.append("Targets (issue 2):")
    out.append("")
    for name, ok, detail in targets:
        mark = "**unknown** (missing data)" if ok is None else verdict(ok)
        out.append(f"* {name}: {mark} ({detail})")
    return "\n".join(out)


WORKLOADS = {
    "serialize": report_serialize,
    # "pool": report_pool,  -- add when the pool benchmark exists
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", choices=sorted(WORKLOADS), nargs="?", default="serialize")
    ap.add_argument("--target-dir", type=Path, default=Path("target"),
                    help="cargo target directory (default: ./target)")
    opts = ap.parse_args(argv)
    try:
        print(WORKLOADS[opts.workload](opts.target_dir))
    except MissingInput as exc:
        print(f"compare.py: {exc}; run benches/compare.sh first", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
