"""A policy trained by LeRobot on twinarm's sim data, evaluated in twinarm's sim: the interop path end to end.

LeRobot 0.6.1 (its own `lerobot-train`, in its venv) trains ACT on the 50 scripted SO101-PickCube episodes that
`policy_results.py record` wrote (a LeRobot v3 dataset, read by LeRobot as it is), sized like twinarm's ACT recipe
(dim 128, 2 encoder layers, chunk 30, lr 2e-4, batch 32, mean/std normalization of every feature as twinarm's, with
LeRobot's constant learning rate and no EMA, which it does not have); `twinarm eval --policy` then reads LeRobot's checkpoint as twinarm's ACT and runs it on the same 50
evaluation seeds as the recipe, with its temporal ensembling. Table -> benchmarks/results/policy_lerobot_trained.txt.

    python benchmarks/lerobot_trained.py [--steps 10000] [--lerobot-python /root/lerobot-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policy_results import DATASET, EVAL_OVERRIDES, PICK, RESULTS, TWINARM, WORK  # noqa: E402
from policy_speed import DEFAULT_LEROBOT  # noqa: E402

RECIPE = ["--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false", "--policy.dim_model=128",
          "--policy.dim_feedforward=512", "--policy.n_heads=4", "--policy.n_encoder_layers=2",
          "--policy.n_vae_encoder_layers=2", "--policy.chunk_size=30", "--policy.n_action_steps=10",
          "--policy.optimizer_lr=2e-4", "--batch_size=32", "--num_workers=0", "--wandb.enable=false",
          # LeRobot's ACT leaves features of a kind its mapping lacks unnormalized, and its default mapping has no
          # ENV: the cube pose would go in raw (metres). twinarm's recipe normalizes it (mean/std), so this does.
          '--policy.normalization_mapping={"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ENV": "MEAN_STD", '
          '"ACTION": "MEAN_STD"}']  # fmt: skip


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10_000, help="LeRobot training steps")
    p.add_argument("--lerobot-python", type=Path, default=DEFAULT_LEROBOT, help="python of a venv with lerobot[training]")
    a = p.parse_args()
    if not a.lerobot_python.exists():
        raise SystemExit(f"--lerobot-python {a.lerobot_python}: not found (a venv with `pip install 'lerobot[training]'`)")
    if not (DATASET / "meta" / "info.json").exists():
        raise SystemExit(f"{DATASET}: no dataset; run `python benchmarks/policy_results.py record` first")
    out = WORK / f"lerobot_act_{a.steps}_env_normalized"
    ckpt = out / "checkpoints" / "last" / "pretrained_model"
    train = [str(a.lerobot_python.parent / "lerobot-train"), "--dataset.repo_id=local/so101_pickcube_scripted_50",
             f"--dataset.root={DATASET}", *RECIPE, f"--steps={a.steps}", f"--save_freq={a.steps}",
             f"--log_freq={max(1, a.steps // 20)}", f"--output_dir={out}"]  # fmt: skip
    t0 = time.time()
    if not ckpt.exists():
        run(train, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    train_s = time.time() - t0
    ev = out / "twinarm_eval"
    evaluate = TWINARM + ["eval", "--policy", str(ckpt), "--env", PICK, "--episodes", "50", "--n-envs", "10",
                          "--videos", "2", "--threads", "2", "--out", str(ev), *EVAL_OVERRIDES["act"]]  # fmt: skip
    if not (ev / "eval_info.json").exists():
        run(evaluate)
    agg = json.loads((ev / "eval_info.json").read_text())["aggregated"]
    text = (
        "ACT trained by LeRobot 0.6.1 (lerobot-train) on twinarm's 50 scripted SO101-PickCube episodes, evaluated by "
        "twinarm in sim over the recipe's 50 evaluation seeds"
        + (f" (training {train_s / 60:.0f} min on this machine)" if train_s > 60 else "") + ".\n"
        f"Commands:\n  {shlex.join(train)}\n  twinarm {shlex.join(evaluate[len(TWINARM):])}\n\n"
        "| policy | trained by | steps | pc_success | avg_max_reward |\n|---|---|---|---|---|\n"
        f"| ACT (dim 128, chunk 30) | LeRobot 0.6.1 | {a.steps} | {agg['pc_success']:.0f} % | {agg['avg_max_reward']:.3f} |\n"
    )
    (RESULTS / "policy_lerobot_trained.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
