"""Does an imitation policy read where the object is, or follow its own joint state?

    python benchmarks/object_grounding.py --dataset DATASET --policy RUN_OR_CHECKPOINT [--policy ...]

On the dataset's own frames, at a few times into each episode, the policy's action chunk is predicted twice:
with the frame's observations, and with `observation.environment_state` (the object's pose) swapped for another
episode's at the same time. How far the chunk moves is printed beside how far the two demonstrations' own
actions differ over the same steps. That gap is the exact answer only at the start, while both arms still sit
at home; later it also holds the arm's own diverging path, which the swap leaves alone, so it is a scale to read
the change against, not a target. Numbers are in the dataset's action units, the largest joint difference over
the window, averaged over pairs; `--per-joint` prints each joint's instead.
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
from twinarm.datasets_io.reader import DatasetMeta, LeRobotDatasetReader


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


def grounding(policy: Policy, dataset: Path, times: list[int], pairs: int,
              window: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per time t, per action dimension: (how far the chunk moves when the object's pose is swapped, how far the
    two demonstrations' actions differ), each the largest difference over the window, averaged over the pairs."""
    cfg = policy.config
    if ENV_STATE not in cfg.input_features:
        raise SystemExit(f"{dataset}: the policy reads no {ENV_STATE} (a camera policy?): nothing to swap")
    fps = DatasetMeta(dataset).fps
    ds = LeRobotDatasetReader(dataset, delta_timestamps=delta_timestamps(cfg, fps), cameras=[])
    n = min(pairs, ds.num_episodes)
    if n < 2:
        raise SystemExit(f"{dataset}: needs at least 2 episodes, has {ds.num_episodes}")
    span = slice(cfg.n_obs_steps - 1 if policy.name == "diffusion" else 0, None)  # the chunk's first action on
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
            chunk = _chunk(policy, obs, window)
            moved.append((chunk - _chunk(policy, swapped, window)).abs().amax(0).numpy())
            w = len(chunk)  # the window, or the whole chunk where it is shorter
            gap.append((a["action"][span][:w] - b["action"][span][:w]).abs().amax(0).numpy())
        out.append((np.mean(moved, axis=0), np.mean(gap, axis=0)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True, help="the LeRobot dataset the policies were trained on")
    p.add_argument("--policy", action="append", required=True, help="training run or checkpoint (repeatable)")
    p.add_argument("--times", default="5,25,50,100", help="frames into each episode to probe (comma-separated)")
    p.add_argument("--pairs", type=int, default=10, help="episodes probed; each is paired with another of them")
    p.add_argument("--window", type=int, default=16, help="actions of each chunk compared")
    p.add_argument("--per-joint", action="store_true", help="one cell per action dimension instead of the largest")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    times = [int(t) for t in a.times.split(",")]
    lines = []
    for src in a.policy:
        policy = Policy.from_pretrained(resolve_checkpoint(src)).eval()
        for t, (moved, gap) in zip(times, grounding(policy, a.dataset, times, a.pairs, a.window), strict=True):
            cells = [f"{m:.3f} / {g:.3f}" for m, g in zip(moved, gap, strict=True)] if a.per_joint else \
                    [f"{moved.max():.3f} / {gap.max():.3f}"]
            lines.append(f"| {src} | {t} | " + " | ".join(cells) + " |")
    names = DatasetMeta(a.dataset).features["action"].get("names") or [f"action {i}" for i in range(len(moved))]
    cols = list(names) if a.per_joint else ["largest over the joints"]
    print(f"Chunk change when the object's pose is swapped for another episode's / the two demonstrations' own "
          f"gap, first {a.window} actions, {a.pairs} episodes:\n")
    print("| policy | t | " + " | ".join(cols) + " |\n" + "|---" * (len(cols) + 2) + "|\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
