#!/usr/bin/env bash
# Memory checking: runs the codec, registry and same-build tests, and pool round
# trips, under valgrind's memcheck; any error fails the run.
#
#   bash scripts/valgrind.sh
#
# Needs valgrind (Debian: `apt-get install -y valgrind`; `.ci/run` installs it).
# The pool's workers and fork servers run under memcheck too (--trace-children).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed (Debian: apt-get install -y valgrind)" >&2
    exit 1
fi

# The test binaries, built as `cargo test` builds them; their paths from cargo's
# JSON messages.
binaries() {
    cargo test --no-run --message-format=json "$@" 2>/dev/null \
        | grep -o '"executable":"[^"]*"' \
        | sed 's/^"executable":"//; s/"$//'
}

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

# Runs a program under memcheck, the processes it starts too (pool workers and
# fork servers); each process writes its own log. Any error in any of them (an
# invalid read or write, a jump on uninitialised memory, a bad free, memory
# definitely lost) fails the step. Only memory definitely lost counts as a leak:
# Rust keeps some statics (thread-locals, the registry's index) reachable until
# exit. valgrind 3.19 does not know `pidfd_open` (syscall 434) and says so in the
# logs; the pool then falls back to waiting without pidfds.
run() {
    local name=$1
    shift
    printf '\n== memcheck: %s\n' "$name"
    rm -f "$LOGS"/*.log
    valgrind --tool=memcheck --trace-children=yes --log-file="$LOGS/%p.log" \
        --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        "$@"
    local logs=("$LOGS"/*.log) bad=0
    for log in "${logs[@]}"; do
        # A process killed with SIGKILL (a fork server at shutdown) writes no
        # summary; errors are logged as they are found, so look for them.
        if grep -qE 'ERROR SUMMARY: [1-9]|Invalid (read|write|free)|uninitialised|Syscall param|Mismatched free|overlap|definitely lost in loss record' "$log"; then
            cat "$log" >&2
            bad=1
        fi
    done
    if [ "$bad" -ne 0 ]; then
        echo "valgrind.sh: memcheck found errors in $name (logs above)" >&2
        exit 1
    fi
    echo "memcheck: $name: ${#logs[@]} processes, 0 errors ($(grep -l 'ERROR SUMMARY: 0 errors' "${logs[@]}" | wc -l) with a summary, the others killed)"
}

mapfile -t core < <(binaries -p dilly --lib --test wire --test registry --test same_build)
if [ "${#core[@]}" -ne 4 ]; then
    echo "valgrind.sh: expected 4 test binaries of dilly, found ${#core[@]}: ${core[*]}" >&2
    exit 1
fi
for bin in "${core[@]}"; do
    # One thread at a time: memcheck serialises threads anyway.
    run "dilly $(basename "$bin")" "$bin" --test-threads=1
done

# Workers run under memcheck too, so they must be told their program: under
# valgrind, /proc/self/exe is valgrind's tool.
cargo build -p dilly-pool --example round_trip
run "dilly-pool round trips (Spawn and ForkServer, workers included)" \
    "$(dirname "${core[0]}")/../examples/round_trip"

printf '\nvalgrind.sh: no memcheck errors\n'
