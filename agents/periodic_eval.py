"""The in-sim evaluation every `eval_freq` steps of a training run (offline or online): its
`eval_log.csv` row, its line above the progress bar, the learning curve redrawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from twinarm.agents.policy import Policy
from twinarm.agents.run_log import plot_run
from twinarm.agents.thread_budget import ThreadBudget
from twinarm.agents.train_config import TrainConfig, sim_kwargs


def eval_row(
    tc: TrainConfig, policy: Policy, step: int, out: Path, budget: ThreadBudget | None
) -> dict[str, Any]:
    from twinarm.agents.eval import evaluate, save_result

    assert tc.env is not None
    res = evaluate(
        policy, tc.env, n_episodes=tc.eval_episodes, n_envs=tc.eval_n_envs, seed=tc.seed + 10_000_000,
        videos_dir=out / "eval" / f"{step:08d}", max_videos=1, image_size=tc.image_size,
        env_kwargs=sim_kwargs(tc) or None, precision=tc.precision,
        thread_budget=budget,
    )  # fmt: skip
    save_result(res, out / "eval" / f"{step:08d}")
    return {"step": step, **{k: v for k, v in res.aggregated.items()}}


def curve_title(tc: TrainConfig) -> str:
    return f"{tc.policy} on {tc.env.split('/')[-1]}" if tc.env else tc.policy


def report_eval(bar: tqdm, postfix: dict[str, str], row: dict[str, Any], out: Path, title: str) -> None:
    """An evaluation's result: a line above the progress bar (or on stdout without one), the bar's
    postfix, and the learning curve redrawn."""
    videos = sorted((out / "eval" / f"{row['step']:08d}").glob("*.mp4"))
    n = row["n_episodes"]
    line = (f"step {row['step']}: eval pc_success {row['pc_success']:.0f} % over {n} episode{'s' * (n != 1)}, "
            f"avg_max_reward {row['avg_max_reward']:.3f}" + (f", video {videos[0]}" if videos else ""))
    tqdm.write(line)
    postfix["success"] = f"{row['pc_success']:.0f}%"
    bar.set_postfix(postfix)
    plot_run(out, title=title)
