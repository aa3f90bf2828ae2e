"""The soak benchmark's short variant: a minute of real requests, no failure, no memory creep (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads the server's memory from /proc")
def test_the_short_soak_meets_its_bar():
    """A minute of load on a 2-core machine is noisy: a soak that misses its bar once runs
    again, and the test fails when the second one misses it too. Every miss is printed,
    with the failed requests' answers, so a rare fault stays visible in the log."""
    for _ in range(2):
        proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--short"], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        print(proc.stdout, proc.stderr[-3000:])
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "| this tree | sequential | 60 | 0 |" in proc.stdout and "| this tree | mixed | 60 | 0 |" in proc.stdout
