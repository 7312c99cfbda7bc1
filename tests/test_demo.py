"""The README's main-job command in duration mode, as one smoke test."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.processes import REPO_ROOT, free_port

SUMMARY = re.compile(
    r"Summary: (\d+) completed, (\d+) failed, (\d+) waiting for an operator, "
    r"(\d+) still running"
)


@pytest.mark.slow
def test_demo_duration_mode_finishes_cleanly(tmp_path):
    environment = {
        key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"
    }
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    command = [
        "bash", "examples/demo.sh",
        "--duration", "20", "--workflows", "6", "--port", str(free_port()),
    ]

    result = subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout + result.stderr
    summary = SUMMARY.search(result.stdout)
    assert summary is not None, result.stdout
    assert sum(int(count) for count in summary.groups()) == 6
    assert "Traceback" not in result.stdout + result.stderr
