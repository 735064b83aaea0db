#!/usr/bin/env bash
# Side-by-side tables: dilly's criterion benches against the Python tools.
#
#   bash benches/compare.sh [serialize|pool|redis|all]   # default: all
#   QUICK=1 bash benches/compare.sh pool           # Python in --quick mode (smoke test)
#
#   serialize  dilly and serde_closure against dill, cloudpickle and pickle;
#              ~1 min of Rust benches + ~10 s of Python
#   pool       dilly-pool, procspawn and a raw pipe against multiprocessing.Pool (fork,
#              spawn), ProcessPoolExecutor, pathos and loky; and the makespans of
#              long tasks (8 x 200 ms, a mix of 50-400 ms; sleeping and spinning) on
#              4 workers against multiprocessing, ProcessPoolExecutor and loky;
#              ~1.5 min of Rust benches + ~2-3 min of Python
#   redis      dilly-redis against RQ, each through its own local redis-server with 2
#              worker processes (needs redis-server); ~1.5 min of Rust + ~1 min of Python
#
# Works from any directory. Steps, per workload W:
#   1. cargo bench --bench W   -> <target>/criterion/<group>/<tool>/<case>/new/
#                                 <target>/dilly-bench/{serialize-sizes,pool-latency,
#                                 pool-long}.json
#   2. benches/python/run.sh W.py --json <target>/dilly-bench/python-W.json
#   3. python3 benches/python/compare.py W   -> one markdown report on stdout
# Progress and the tools' own output go to stderr; stdout is only the final tables.
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "$ROOT"

case "${1:-all}" in
    serialize) workloads=(serialize) ;;
    pool) workloads=(pool) ;;
    redis) workloads=(redis) ;;
    all) workloads=(serialize pool redis) ;;
    *)
        echo "usage: bash benches/compare.sh [serialize|pool|redis|all]" >&2
        exit 2
        ;;
esac

# The cargo target directory, as cargo itself resolves it (CARGO_TARGET_DIR,
# .cargo/config.toml, or ./target).
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
OUT="$TARGET_DIR/dilly-bench"
mkdir -p -- "$OUT"

first=1
for w in "${workloads[@]}"; do
    # The redis workload is dilly-redis's bench, and RQ's script is redis_rq.py.
    package=dilly
    script="$w"
    if [[ "$w" == redis ]]; then
        package=dilly-redis
        script=redis_rq
    fi
    echo "compare.sh: [$w 1/3] cargo bench -p $package --bench $w" >&2
    cargo bench -p "$package" --bench "$w" >&2

    echo "compare.sh: [$w 2/3] benches/python/run.sh $script.py" >&2
    py_args=(--json "$OUT/python-$script.json")
    if [[ -n "${QUICK:-}" ]]; then
        py_args+=(--quick)
    fi
    bash "$ROOT/benches/python/run.sh" "$script.py" "${py_args[@]}" >&2

    echo "compare.sh: [$w 3/3] compare.py $w" >&2
    if [[ -z "$first" ]]; then
        echo
    fi
    first=
    if [[ ${#workloads[@]} -gt 1 ]]; then
        echo "## $w"
        echo
    fi
    python3 "$ROOT/benches/python/compare.py" "$w" --target-dir "$TARGET_DIR"
done
