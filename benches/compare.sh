#!/usr/bin/env bash
# Side-by-side table: dilly and serde_closure (criterion) against dill, cloudpickle
# and pickle (benches/python), for the `serialize` workload of issue 2.
#
#   bash benches/compare.sh            # full run: ~1 min of Rust benches + ~10 s of Python
#   QUICK=1 bash benches/compare.sh    # Python in --quick mode (smoke test)
#
# Works from any directory. Steps:
#   1. cargo bench --bench serialize   -> <target>/criterion/serialize/<tool>/<kind>/new/
#                                         <target>/dilly-bench/serialize-sizes.json
#   2. benches/python/run.sh serialize.py --json <target>/dilly-bench/python-serialize.json
#   3. python3 benches/python/compare.py serialize  -> one markdown table on stdout
# Progress and the tools' own output go to stderr; stdout is only the final table.
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "$ROOT"

# The cargo target directory, as cargo itself resolves it (CARGO_TARGET_DIR,
# .cargo/config.toml, or ./target).
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
OUT="$TARGET_DIR/dilly-bench"
mkdir -p -- "$OUT"

echo "compare.sh: [1/3] cargo bench --bench serialize" >&2
cargo bench -p dilly --bench serialize >&2

echo "compare.sh: [2/3] benches/python/run.sh serialize.py" >&2
py_args=(--json "$OUT/python-serialize.json")
if [[ -n "${QUICK:-}" ]]; then
    py_args+=(--quick)
fi
bash "$ROOT/benches/python/run.sh" serialize.py "${py_args[@]}" >&2

echo "compare.sh: [3/3] compare.py serialize" >&2
python3 "$ROOT/benches/python/compare.py" serialize --target-dir "$TARGET_DIR"
