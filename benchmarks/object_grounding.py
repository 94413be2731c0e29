"""Does an imitation policy read where the object is, or extrapolate its own joint history?

    python benchmarks/object_grounding.py --dataset DATASET --policy RUN_OR_CHECKPOINT [--policy ...]

On the dataset's own frames, at a few times into each episode, the policy's action chunk is predicted twice:
with the frame's observations, and with `observation.environment_state` (the object's pose) swapped for another
episode's at the same time. How far the chunk moves is set beside how far the two demonstrations' actions
differ over the same steps. A policy whose chunk stops moving once the arm is under way has learnt to follow
its own motion, and in closed loop it drifts from the object (Diffusion on ALOHA TransferCube, README).
Numbers are in the dataset's action units, the largest joint difference over the window, averaged over pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from twinarm.agents.features import ENV_STATE
from twinarm.agents.policy import Policy, resolve_checkpoint
from twinarm.agents.train import delta_timestamps
from twinarm.datasets_io.reader import LeRobotDatasetReader


def _chunk(policy: Policy, obs: dict[str, torch.Tensor], window: int) -> torch.Tensor:
    """The first `window` actions the policy would plan from `obs` (one sample, no batch axis)."""
    if policy.name == "diffusion":
        # (n_obs, ...) stacked by the dataset's delta timestamps, or one step without that axis when n_obs_steps == 1
        batch = {k: (v if v.dim() > len(policy.config.input_features[k].shape) else v.unsqueeze(0)).unsqueeze(0)
                 for k, v in obs.items()}
        chunk = policy.predict_action_chunk(batch, torch.Generator().manual_seed(0))[0]  # same noise both times
    elif policy.name == "act":
        policy.reset()
        chunk = policy.predict_action_chunk({k: v.unsqueeze(0) for k, v in obs.items()})[0]
    else:
        raise SystemExit(f"{policy.name}: only imitation policies (act, diffusion) plan chunks from a dataset's frames")
    return chunk[:window]


def grounding(policy: Policy, dataset: Path, times: list[int], pairs: int, window: int) -> list[tuple[float, float]]:
    """Per time t: (mean chunk change when the object pose is swapped, mean gap between the demos' actions)."""
    cfg = policy.config
    if ENV_STATE not in cfg.input_features:
        raise SystemExit(f"{dataset}: the policy reads no {ENV_STATE} (a camera policy?): nothing to swap")
    ds = LeRobotDatasetReader(dataset)
    ds = LeRobotDatasetReader(dataset, delta_timestamps=delta_timestamps(cfg, ds.fps), cameras=[])
    n = min(pairs, ds.num_episodes)
    if n < 2:
        raise SystemExit(f"{dataset}: needs at least 2 episodes, has {ds.num_episodes}")
    first_action = cfg.n_obs_steps - 1 if policy.name == "diffusion" else 0
    out = []
    for t in times:
        moved, gap = [], []
        for ep in range(n):
            rows, other = ds.episode_rows(ep), ds.episode_rows((ep + n // 2) % n)
            if t >= min(len(rows), len(other)):
                raise SystemExit(f"{dataset}: --times {t} is past the end of episode {ep} or {(ep + n // 2) % n}")
            a, b = ds[rows[t]], ds[other[t]]
            obs = {k: a[k] for k in cfg.input_features}
            swapped = {**obs, ENV_STATE: b[ENV_STATE]}
            moved.append(float((_chunk(policy, obs, window) - _chunk(policy, swapped, window)).abs().max()))
            span = slice(first_action, first_action + window)
            gap.append(float((a["action"][span] - b["action"][span]).abs().max()))
        out.append((float(np.mean(moved)), float(np.mean(gap))))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True, help="the LeRobot dataset the policies were trained on")
    p.add_argument("--policy", action="append", required=True, help="training run or checkpoint (repeatable)")
    p.add_argument("--times", default="5,25,50,100", help="frames into each episode to probe (comma-separated)")
    p.add_argument("--pairs", type=int, default=10, help="episodes probed; each is paired with another of them")
    p.add_argument("--window", type=int, default=16, help="actions of each chunk compared")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    times = [int(t) for t in a.times.split(",")]
    header = "| policy | " + " | ".join(f"t = {t}" for t in times) + " |"
    lines = [header, "|---" * (len(times) + 1) + "|"]
    for src in a.policy:
        policy = Policy.from_pretrained(resolve_checkpoint(src)).eval()
        cells = [f"{m:.3f} ({100 * m / g:.0f} %)" for m, g in grounding(policy, a.dataset, times, a.pairs, a.window)]
        lines.append(f"| {src} | " + " | ".join(cells) + " |")
    print(f"Chunk change when the object's pose is swapped for another episode's (in brackets: share of the gap "
          f"between the two demonstrations' actions), first {a.window} actions, {a.pairs} episodes:\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
