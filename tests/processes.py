"""Start real Relor processes against the test database and wait on conditions."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

REPO_ROOT = Path(__file__).resolve().parent.parent


def child_environment(role: str, **extra: str) -> dict[str, str]:
    """Return the environment for a child process that uses the test database."""
    database = connection.settings_dict
    url = (
        f"postgresql://{database['USER'] or 'postgres'}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )
    if connection.vendor == "sqlite":
        url = f"sqlite:///{database['NAME']}"

    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RELOR_DB_APPLICATION_NAME": role,
        "PYTHONUNBUFFERED": "1",
    }
    environment.update(extra)
    return environment


def start_process(args: list[str], role: str, log_path: Path, **extra: str) -> subprocess.Popen:
    log = log_path.open("wb")
    return subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        env=child_environment(role, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def manage(*args: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "manage.py"), *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout_seconds: float, message: str) -> None:
    """Poll ``condition`` until it holds, failing the test after the time limit."""
    give_up_at = time.monotonic() + timeout_seconds
    while time.monotonic() < give_up_at:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_seconds}s waiting until {message}")
