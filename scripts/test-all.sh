#!/usr/bin/env bash
# The whole test suite: what CI runs (through .ci/run) and what the README tells
# you to run. Non-interactive; installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# dilly-redis's tests start their own redis-server on a free loopback port.
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "installing redis-server"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "dilly-redis's tests need redis-server: install it (Debian: apt-get install -y redis-server)" >&2
        exit 1
    fi
fi

step "tests, doc tests and UI tests (linkme collector)"
cargo test --workspace

step "tests with the inventory collector"
# dilly-pool's zero-set-up workers start before inventory has collected anything
# (docs/decisions.md), so its tests and dilly-redis's and dilly-redis-skew-host's (whose hosts run pools), and
# the doc tests that start pools, run with linkme only.
cargo test --workspace --exclude dilly-pool --exclude dilly-redis --exclude dilly-redis-skew-host --features dilly/inventory --lib --bins --tests

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
last=$(timeout 120 cargo run --quiet -p dilly-pool --example async_server | tail -n 1)
if [ "$last" != "fib(30) = 832040, computed in another process" ]; then
    echo "async_server example printed '$last' as its last line" >&2
    exit 1
fi
echo "async_server example: $last"

step "the redis_map example: a worker host and a submitter through a local redis-server"
port=$((20000 + RANDOM % 20000))
redis_dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --dir "$redis_dir" --save "" --appendonly no >/dev/null &
redis_pid=$!
export DILLY_REDIS_URL="redis://127.0.0.1:$port"
cargo build --quiet -p dilly-redis --example redis_map
example="${CARGO_TARGET_DIR:-target}/debug/examples/redis_map"
"$example" worker 2>/dev/null &
host_pid=$!
cleanup_redis() { kill "$host_pid" "$redis_pid" 2>/dev/null || true; rm -rf "$redis_dir"; }
trap cleanup_redis EXIT
last=$(timeout 120 "$example" submit | tail -n 1)
if [ "$last" != "[5, 12, 21, 32]" ]; then
    echo "redis_map example printed '$last' as its last line, expected '[5, 12, 21, 32]'" >&2
    exit 1
fi
echo "redis_map example: $last"
