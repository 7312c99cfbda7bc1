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

# Graphviz's dot checks that rendered DOT parses, and the browser tests drive
# Debian's Chromium at /usr/bin/chromium. Install all three packages when any
# is missing and the script runs as root with apt-get. Never run `playwright
# install`: it downloads its own browser builds, and the tests use Debian's.
if { ! command -v dot >/dev/null 2>&1 || [[ ! -x /usr/bin/chromium ]] \
        || [[ ! -x /usr/bin/chromedriver ]]; } \
        && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz chromium chromium-driver >/dev/null
fi

exec .venv/bin/python -m pytest "$@"
