#!/usr/bin/env bash
# Run a Python benchmark script from this directory inside a private virtualenv.
#
#   bash benches/python/run.sh [SCRIPT] [ARGS...]
#
# SCRIPT defaults to serialize.py (also when the first argument starts with '-'). A bare/relative SCRIPT is looked up next to this file
# first, then relative to the current directory; ARGS are passed through untouched, so
# relative paths in them (e.g. --json out.json) are relative to *your* current directory.
# The venv lives in benches/python/.venv and is (re)created / updated only when needed.
# Set PYTHON to choose the interpreter used to create the venv (default: python3).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
VENV="$SCRIPT_DIR/.venv"
REQS="$SCRIPT_DIR/requirements.txt"
STAMP="$VENV/.installed-requirements.txt"
PYTHON="${PYTHON:-python3}"

# First argument is the script, unless it is missing or looks like an option.
script="serialize.py"
if [[ $# -gt 0 && "$1" != -* ]]; then
    script="$1"
    shift
fi

if [[ "$script" != /* && -f "$SCRIPT_DIR/$script" ]]; then
    script="$SCRIPT_DIR/$script"
elif [[ ! -f "$script" ]]; then
    echo "run.sh: no such script: $script (looked in $SCRIPT_DIR and $PWD)" >&2
    exit 2
fi

# Create the venv if missing (or broken, e.g. the base interpreter went away).
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    rm -rf -- "$VENV"
    echo "run.sh: creating virtualenv in $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    # Keep the venv out of git without touching any tracked .gitignore.
    printf '*\n' > "$VENV/.gitignore"
fi

# Install the pinned requirements, only when they changed since the last install.
if ! cmp -s "$REQS" "$STAMP"; then
    echo "run.sh: installing $(grep -cv '^\s*\(#\|$\)' "$REQS") pinned packages into the venv" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
    cp -- "$REQS" "$STAMP"
fi

exec "$VENV/bin/python" "$script" "$@"
