"""The policy speed scripts behind the README's tables still run: `benchmarks/policy_speed.py` (twinarm's side
when LeRobot is not installed, as in CI) and `benchmarks/policy_ab.py` (the paired A/B, which builds its workers
through `policy_speed.twinarm_setup` and swaps modules in from a git revision; its unpacking of twinarm_setup
broke once without a test noticing). Each times TD-MPC, the quickest policy at LeRobot's sizes, once."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_policy_speed_runs_twinarm_alone_when_lerobot_is_missing(tmp_path: Path) -> None:
    out_file = tmp_path / "speed.txt"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "policy_speed.py"), "--policy", "tdmpc", "--repeats", "1",
           "--out", str(out_file), "--lerobot-python", str(tmp_path / "no-python")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    unit = r"([\d.]+) (ms|s)"
    row = re.search(rf"^tdmpc +2\.78M +n/a +{unit} .* {unit} plan step +n/a .* {unit} ", out.stdout, re.M)
    assert row, out.stdout
    assert re.search(r"^tdmpc float32 floor: 76\.9 GFLOP ", out.stdout, re.M), out.stdout
    # Calls quicker than a timed turn (policy_speed.MIN_TURN_S) are timed in bursts that fill one; how many
    # follows from the warm-up times, which depend on the machine's load (on a quiet CPU a TD-MPC training step
    # is timed 5-9 at a time, beside a busy process 1 at a time), so only the bounds are checked.
    burst = re.search(r"^calls per timed turn .*tdmpc: (\d+) training step\(s\), (\d+) inference", out.stdout, re.M)
    assert burst and 1 <= int(burst.group(1)) <= 20 and int(burst.group(2)) >= 1, out.stdout
    assert "LeRobot from not installed" in out_file.read_text()


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16 arithmetic")
def test_policy_speed_compares_in_bf16(tmp_path: Path) -> None:
    """`--precision bf16`: both sides under the CPU's bf16 autocast; no int8 columns, the floor in bf16."""
    out_file = tmp_path / "speed.txt"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "policy_speed.py"), "--policy", "tdmpc", "--repeats", "1",
           "--precision", "bf16", "--out", str(out_file), "--lerobot-python", str(tmp_path / "no-python")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    unit = r"[\d.]+ (ms|s)"  # either unit: a loaded machine may take over a second
    assert re.search(rf"^tdmpc +2\.78M +n/a +{unit} .* {unit} plan step +n/a +n/a +n/a *$", out.stdout, re.M), out.stdout
    assert "int8" not in out.stdout
    assert re.search(r"^tdmpc bf16 floor: 76\.9 GFLOP ", out.stdout, re.M), out.stdout
    assert "bf16 autocast on both sides" in out_file.read_text()


def test_shared_cores_times_both_twinarm_modes_beside_a_busy_process(tmp_path: Path) -> None:
    out_file = tmp_path / "shared.txt"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "shared_cores.py"), "--policies", "tdmpc", "--kinds", "infer", "--calls", "1",
           "--warmup", "1",
           "--out", str(out_file), "--lerobot-python", str(tmp_path / "no-python")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LeRobot not found" in out.stdout
    for side in ("twinarm --no-yield-cores", "twinarm \\(yields cores\\)"):
        assert re.search(rf"^\| tdmpc \| inference \| {side} \| [\d.]+ (ms|s) \| [\d.]+ (ms|s) \| [\d.]+ (ms|s) \| [\d.]+x \| - \|$",
                         out.stdout, re.M), out.stdout
    assert "beside one spinning process; 1 calls per side and condition after 1 warm-up calls" in out_file.read_text()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_policy_ab_times_a_revision_against_the_tree() -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "policy_ab.py"), "--rev", "HEAD", "--modules", "tdmpc.fused",
           "--policy", "tdmpc", "--kind", "infer-int8", "--rounds", "1"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"tdmpc infer-int8, 1 rounds: HEAD median ([\d.]+) s .* tree/HEAD ([\d.]+)", out.stdout)
    assert m, out.stdout
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0


def test_float32_floor_counts_the_packed_backbone_like_the_plain_one() -> None:
    """The floor's FLOP counter reads oneDNN's fused convolutions (with a residual add, the weight comes third)
    as it reads plain ones: ResNet-18's packed inference counts the FLOPs of its plain convolutions."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from float32_floor import count_flops
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from twinarm.agents.backbone import ResNet18

    net = ResNet18("frozen_batch_norm").eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        packed = count_flops(lambda: net(x)).flops
        plain = count_flops(lambda: net.trunk(x)).flops
    assert packed["convolution"] == plain["convolution"] > 0
