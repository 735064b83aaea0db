#!/usr/bin/env bash
# Runs every fuzz target, seeded from tests/golden/, with libFuzzer's memory limits
# set to what the decoders promise (docs/reliability.md, "Hostile input").
#
#   bash fuzz/run.sh time 20        # each target for 20 seconds (CI)
#   bash fuzz/run.sh runs 1000000   # each target for a million inputs
#   bash fuzz/run.sh time 20 call_frame object   # only these targets
#
# Stable Rust: cargo-fuzz needs nightly flags, which RUSTC_BOOTSTRAP=1 allows.
# Installs cargo-fuzz from crates.io when it is missing. A failing input is kept
# in fuzz/artifacts/<target>/ and the script stops with libFuzzer's status.
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:?usage: run.sh time SECONDS | runs COUNT [TARGET...]}
amount=${2:?usage: run.sh time SECONDS | runs COUNT [TARGET...]}
shift 2
case $mode in
    time) budget=(-max_total_time="$amount") ;;
    runs) budget=(-runs="$amount") ;;
    *) echo "run.sh: the mode is 'time' or 'runs', not '$mode'" >&2; exit 2 ;;
esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(from_bytes from_bytes_with_limits call_frame raw_func object pool_frames self_described)
fi

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# Inputs up to 4 KiB: far past 128 levels of nesting. Every decode of such an input
# holds under 64 KiB + 4 x 4 KiB (tests/bounds.rs), so one allocation of 1 MiB
# (libFuzzer's smallest malloc limit) is a failure; RSS is capped for the process
# as a whole (libFuzzer's corpus and AddressSanitizer's quarantine included).
limits=(-max_len=4096 -malloc_limit_mb=1 -rss_limit_mb=1024 -timeout=10)

# `n` as `width` little-endian bytes.
le() {
    local n=$1 width=$2 i out=''
    for ((i = 0; i < width; i++)); do
        out+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255)))
    done
    printf "$out"
}

# The pool's frames (pool/src/protocol): a 4-byte length, a tag, the fields.
# A stream from the parent (load the golden RawFunc, run it on one item, clear)
# and one from a worker (a result, busy).
seed_pool_frames() {
    local raw=../tests/golden/raw_func.bin size
    size=$(wc -c <"$raw")
    {
        le $((1 + 8 + 8 + size)) 4; le 3 1; le 1 8; le "$size" 8; cat "$raw"
        le 28 4; le 4 1; le 1 8; le 1 8; le 3 8; printf 'hey'
        le 1 4; le 5 1
    } >"$1/parent-stream"
    { le 3 4; le 104 1; printf 'ok'; le 1 4; le 108 1; } >"$1/worker-stream"
}

for target in "${targets[@]}"; do
    corpus=corpus/$target
    mkdir -p "$corpus"
    if [ "$target" = pool_frames ]; then
        seed_pool_frames "$corpus"
    else
        cp ../tests/golden/*.bin "$corpus"/
    fi
    printf '\n== fuzz %s\n' "$target"
    cargo fuzz run "$target" "$corpus" -- "${limits[@]}" "${budget[@]}" -print_final_stats=1
done
