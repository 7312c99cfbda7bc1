#!/usr/bin/env bash
# Install what the test suite needs and run it. Extra arguments go to pytest.
#
# Without DATABASE_URL the suite runs on SQLite and skips the PostgreSQL-only
# tests; with DATABASE_URL=postgresql://... it runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

# Graphviz's dot checks that rendered DOT parses; install it when we may.
if ! command -v dot >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && apt-get install -y -qq graphviz >/dev/null
fi

exec .venv/bin/python -m pytest "$@"
