"""`benchmarks/policy_ab.py` (the paired A/B behind the README's "paired" speed figures) still runs: it builds
its workers through `policy_speed.twinarm_setup` and swaps modules in from a git revision, both of which can
drift from the code they time (its unpacking of twinarm_setup broke once without a test noticing)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_policy_ab_times_a_revision_against_the_tree() -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "policy_ab.py"), "--rev", "HEAD", "--modules", "tdmpc.fused",
           "--policy", "tdmpc", "--kind", "infer-int8", "--rounds", "1"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"tdmpc infer-int8, 1 rounds: HEAD median ([\d.]+) s .* tree/HEAD ([\d.]+)", out.stdout)
    assert m, out.stdout
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0
