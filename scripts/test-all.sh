#!/usr/bin/env bash
# The whole test suite: what CI runs (through .ci/run) and what the README tells
# you to run. Non-interactive; installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "tests, doc tests and UI tests (linkme collector)"
cargo test --workspace

step "tests with the inventory collector"
# dilly-pool's zero-set-up workers start before inventory has collected anything
# (docs/decisions.md), so its tests, and the doc tests that start pools, run with
# linkme only.
cargo test --workspace --exclude dilly-pool --features dilly/inventory --lib --bins --tests

step "release build: registry, wire, same-build and pool tests (link sections and timing differ when optimized)"
cargo test --release -p dilly -p dilly-fixture --test registry --test wire --test cross_process --test same_build
cargo test --release -p dilly-pool

step "examples run as smoke tests"
cargo run --quiet --example nested >/dev/null
cargo run --quiet --example pool_failures >/dev/null
last=$(cargo run --quiet --release --example seed | tail -n 1)
if [ "$last" != "[5, 12, 21, 32]" ]; then
    echo "seed example printed '$last' as its last line, expected '[5, 12, 21, 32]'" >&2
    exit 1
fi
echo "seed example: $last"
