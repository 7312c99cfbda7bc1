#!/usr/bin/env bash
# Set up Relor on this machine and run the demo in examples/demo.py.
#
# Usage: bash examples/demo.sh [--duration SECONDS] [--workflows N] [--port PORT]
#
# Creates .venv and var/ in the repository root on the first run, installs
# requirements.txt, migrates the database and collects static files. The
# database is the SQLite file var/relor.sqlite3 unless DATABASE_URL is exported.
# The arguments go unchanged to examples/demo.py; see its --help.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

if [[ ! -f requirements.txt ]]; then
    echo "error: $repo_root/requirements.txt is missing, so Relor cannot be" \
        "installed. Restore the file from git and run this script again." >&2
    exit 1
fi

# Debian moves ensurepip into the separate python3-venv package, so python3 -m
# venv can fail after it has created .venv/bin/python. Checking pip catches
# that half-made .venv on the next run, and --clear rebuilds it.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    echo "Creating the virtualenv .venv"
    if ! python3 -m venv --clear .venv; then
        echo "error: python3 -m venv failed. On Debian or Ubuntu, install the" \
            "python3-venv package and run this script again." >&2
        exit 1
    fi
fi

echo "Installing requirements.txt into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

mkdir -p var

# The key is generated once and reused, so sessions and tokens survive a rerun.
# umask keeps the file private from the moment it is created.
if [[ ! -s var/secret_key ]]; then
    echo "Generating var/secret_key"
    (
        umask 077
        .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(50))" \
            >var/secret_key
    )
fi
chmod 600 var/secret_key
SECRET_KEY="$(<var/secret_key)"
export SECRET_KEY

echo "Migrating the database"
.venv/bin/python manage.py migrate --noinput --verbosity 0

echo "Collecting static files"
.venv/bin/python manage.py collectstatic --noinput --verbosity 0

exec .venv/bin/python examples/demo.py "$@"
