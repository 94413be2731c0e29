"""Demonstrations typed into `twinarm teleop --env ... --keyboard tool`, then the PickCube ACT recipe trained on
them: does a policy learn from keyboard-made demonstrations as it does from the scripted expert's?

The typist stands in for a person, who cannot run here. It reads where the cube lies and where the tool is, as
a person reads them off `--view`, and types w/s, a/d, r/f, q/e, o/c into the command's terminal (a pty, read by
the command's own key reader) at a person's pace, pausing between moves. Everything else is the real command:
`teleop --env twinarm/SO101-PickCube-v0 --keyboard tool --obs-type state --record ... --end-on-success
--only-success`, paced at the arm's 30 Hz. Then `twinarm train` with the ACT recipe of policy_results.py (its
flags, this dataset) and `twinarm eval` over the standard 50 evaluation episodes.

    python benchmarks/keyboard_demos.py [--episodes 50] [--keys-per-second 15] [--steps 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policy_results import COMMANDS, DATASET, EVAL_OVERRIDES, PICK, RESULTS, TWINARM, WORK  # noqa: E402

import twinarm.cli.teleop_sim as teleop_sim  # noqa: E402
from twinarm.agents.policy import resolve_checkpoint  # noqa: E402
from twinarm.arms import SO101  # noqa: E402
from twinarm.cli.main import main  # noqa: E402
from twinarm.envs.experts import GRASP_OFFSET, grasp_yaw  # noqa: E402
from twinarm.envs.ik import TcpIK  # noqa: E402
from twinarm.envs.physics import ArmPhysics  # noqa: E402

STEP_M, ROLL_RAD = 0.01, 0.1  # what one key does (KeyboardToolTeleop's defaults)


class Typist:
    """Types one episode's keys into `fd` from the control loop's thread: after each reset of the simulated
    follower it reads the scene and plans the moves, then types one key every `every` steps and pauses
    `pause` steps after each move."""

    def __init__(self, fd: int, every: int, pause: int) -> None:
        self.fd, self.every, self.pause = fd, every, pause
        self.kin = TcpIK(ArmPhysics.from_arm(SO101))
        self.follower = None
        self.queue: list[str] = []
        self.wait = 0

    def attach(self, follower) -> None:
        self.follower = follower
        follower.on_reset.append(self.plan)
        step = follower.step

        def step_and_type(action):
            out = step(action)
            self.tick()
            return out

        follower.step = step_and_type

    def plan(self, pose: np.ndarray) -> None:
        base = self.follower.env.unwrapped
        cube = base.task.cube_pose(base.physics)
        tool, rot = self.kin.tcp_pose(pose[:5])
        yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
        grasp_z = cube[2] + GRASP_OFFSET
        moves: list[tuple[str, int]] = [("o", 1)]
        z = tool[2]

        def towards(target: float, now: float, up: str, down: str, unit: float) -> tuple[str, int]:
            return (up if target > now else down, round(abs(target - now) / unit))

        moves.append(towards(grasp_z + 0.05, z, "r", "f", STEP_M))
        moves.append(towards(cube[0], tool[0], "w", "s", STEP_M))
        moves.append(towards(cube[1], tool[1], "a", "d", STEP_M))
        moves.append(towards(grasp_yaw(cube[3:7], cube[:2]), yaw, "q", "e", ROLL_RAD))
        moves.append(("f", round(0.05 / STEP_M)))
        moves += [("c", 1), ("r", 6)]
        self.queue = []
        for key, n in moves:
            self.queue += [key] * n + ["pause"]
        self.wait = self.pause

    def tick(self) -> None:
        if self.wait > 0:
            self.wait -= 1
            return
        if not self.queue:
            return
        key = self.queue.pop(0)
        if key == "pause":
            self.wait = self.pause
        else:
            os.write(self.fd, key.encode())
            self.wait = self.every - 1


def record_typed(root: Path, episodes: int, keys_per_second: float) -> dict:
    """Run the teleop command with the typist at its terminal; what it printed and how long it took."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "r")
    typist = Typist(master, every=max(1, round(30 / keys_per_second)), pause=10)
    make_follower = teleop_sim.make_sim_follower

    def follower_with_typist(*args, **kwargs):
        follower = make_follower(*args, **kwargs)
        typist.attach(follower)
        return follower

    teleop_sim.make_sim_follower = follower_with_typist
    stdin = sys.stdin
    sys.stdin = stream
    argv = ["teleop", "--env", PICK, "--keyboard", "tool", "--obs-type", "state", "--record", str(root),
            "--episodes", str(episodes), "--episode-time", "20", "--reset-time", "0", "--end-on-success",
            "--only-success"]  # fmt: skip
    print("$ twinarm " + " ".join(argv), flush=True)
    t0 = time.perf_counter()
    try:
        rc = main(argv)
    finally:
        sys.stdin = stdin
        teleop_sim.make_sim_follower = make_follower
        stream.close()
        os.close(master)
    return {"rc": rc, "seconds": time.perf_counter() - t0}


def episode_lengths(root: Path) -> list[int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f, columns=["episode_index"]) for f in sorted((root / "data").rglob("*.parquet"))])
    return np.bincount(table.column("episode_index").to_numpy()).tolist()


def run(cmd: list[str]) -> None:
    print("$ twinarm " + " ".join(cmd[len(TWINARM):]), flush=True)
    subprocess.run(cmd, check=True)


def main_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--keys-per-second", type=float, default=15.0, help="typing pace (a held key repeats ~30/s)")
    ap.add_argument("--steps", type=int, default=10000, help="ACT gradient steps (the recipe's 10,000)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    root = WORK / f"so101_pickcube_keyboard_{args.episodes}"
    out = WORK / f"act_keyboard_{args.episodes}"
    typed = {}
    if not (root / "meta" / "info.json").exists():
        typed = record_typed(root, args.episodes, args.keys_per_second)
    lengths = episode_lengths(root)
    recipe, env_id, _, _ = COMMANDS["act"]
    train = [a for a in recipe]
    train[train.index("--dataset") + 1] = str(root)
    train[train.index("--output-dir") + 1] = str(out)
    train[train.index("--steps") + 1] = str(args.steps)
    train[train.index("--threads") + 1] = str(args.threads)
    for flag in ("--save-freq", "--eval-freq"):
        train[train.index(flag) + 1] = str(max(1, args.steps // 4))
    if not (out / "checkpoints" / "last").exists():
        run(TWINARM + train)
    last = resolve_checkpoint(out).parent.name  # the step `checkpoints/last` stands for
    results = {}
    for max_steps in (150, 300):  # the task's episode, and twice it: typed demonstrations take their time
        where = out / f"final_eval_{max_steps}steps"
        if not (where / "eval_info.json").exists():
            run(TWINARM + ["eval", "--policy", str(out / "checkpoints" / last / "pretrained_model"), "--env", env_id,
                           "--episodes", "50", "--n-envs", "10", "--videos", "2", "--out", str(where),
                           "--max-steps", str(max_steps), *EVAL_OVERRIDES["act"]])  # fmt: skip
        results[max_steps] = json.loads((where / "eval_info.json").read_text())["aggregated"]
    expert_lengths = episode_lengths(DATASET) if (DATASET / "meta" / "info.json").exists() else []
    lines = [
        f"Keyboard demonstrations of {PICK} ({args.episodes}, typed at {args.keys_per_second:g} keys/s through "
        "`teleop --keyboard tool --obs-type state --end-on-success --only-success`), then the ACT recipe:",
        f"  recording: {typed.get('seconds', float('nan')):.0f} s (rc {typed.get('rc', 'n/a')}); episode length "
        f"median {int(np.median(lengths))} steps (min {min(lengths)}, max {max(lengths)})"
        + (f"; the scripted expert's: {int(np.median(expert_lengths))}" if expert_lengths else ""),
        *(f"  ACT, {args.steps} steps on them, episodes of {n} steps: pc_success {r['pc_success']:.0f} %, "
          f"avg_max_reward {r['avg_max_reward']:.3f} over the 50 evaluation episodes" for n, r in results.items()),
        "  (the recipe on the scripted expert's 50 demonstrations: 92 % in the task's 150 steps)",
    ]
    text = "\n".join(lines)
    print(text)
    (RESULTS / "keyboard_demos.txt").write_text(text + "\n")


if __name__ == "__main__":
    main_cli()
