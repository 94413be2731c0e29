"""LeRobot's own tools on twinarm's sim, through the `twinarm.lerobot_env` plugin (`--env.type=twinarm`).

    python benchmarks/lerobot_eval_sim.py parity [--checkpoint DIR]   # one policy, both eval loops, same 50 seeds
    python benchmarks/lerobot_eval_sim.py parity --task aloha --checkpoint DIR   # ... ALOHA's 14 joints, in radians
    python benchmarks/lerobot_eval_sim.py train [--steps 10000]       # lerobot-train, evaluating in twinarm's sim
    python benchmarks/lerobot_eval_sim.py report                      # -> benchmarks/results/lerobot_eval_sim.txt

parity: the ACT recipe's checkpoint (`policy_results.py act`) is written as a LeRobot checkpoint (`twinarm
export-lerobot`) and run by LeRobot 0.6.1's `lerobot-eval` (its ACT, its rollout loop) on twinarm/SO101-PickCube-v0
over the seeds `twinarm eval` uses (100000...), both with the recipe's temporal ensembling; the table counts the
episodes whose outcome agrees. `--task aloha`: the same on twinarm/Aloha-TransferCube-v0 with the ACT recipe's
ALOHA run (`policy_results.py aloha --set chunk_size=100`). train: LeRobot's `lerobot-train` trains ACT (the recipe's sizes, as
`lerobot_trained.py`) on the 50 scripted episodes with `--env.type=twinarm`, so its periodic evaluation runs in
twinarm's sim; then `lerobot-eval` scores the last checkpoint over the same 50 seeds. Both need the lerobot venv
with twinarm installed in it (`pip install -e .` there).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lerobot_trained import RECIPE  # noqa: E402
from policy_results import ALOHA, DATASET, EVAL_OVERRIDES, PICK, RESULTS, TWINARM, WORK  # noqa: E402
from policy_speed import DEFAULT_LEROBOT  # noqa: E402

SEED = 100_000  # twinarm eval's first seed; lerobot-eval's --seed starts its episodes there too
TASKS = {"pick": PICK, "aloha": ALOHA}
#: Each task's parity run folder and its default twinarm checkpoint (the recipes' runs in policy_results.py).
PARITY = {"pick": (WORK / "lerobot_eval_parity", WORK / "act" / "checkpoints" / "00010000" / "pretrained_model"),
          "aloha": (WORK / "lerobot_eval_parity_aloha",
                    WORK / "act_aloha_chunk_size100" / "checkpoints" / "00010000" / "pretrained_model")}  # fmt: skip


def plugin(env_id: str) -> list[str]:
    """LeRobot's flags for a twinarm sim with state observations, as the recipes' policies read it."""
    return ["--env.discover_packages_path=twinarm.lerobot_env", "--env.type=twinarm",
            f"--env.task={env_id.removeprefix('twinarm/')}", "--env.obs_type=state"]  # fmt: skip


#: The recipe's evaluation overrides (`--set K=V` for twinarm eval) as LeRobot's `--policy.K=V`.
ENSEMBLE = [f"--policy.{kv}" for kv in EVAL_OVERRIDES["act"][1::2]]
OUT = RESULTS / "lerobot_eval_sim.txt"


def run(cmd: list[str], log: Path | None = None) -> float:
    """Run a command (stdout+stderr to `log` when given); its wall time in seconds."""
    print("$ " + shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    if log is None:
        subprocess.run(cmd, check=True)
    else:
        with log.open("w") as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode:
            raise SystemExit(f"exit {proc.returncode}; see {log}")
    return time.perf_counter() - t0


def timed_eval(cmd: list[str], out: Path, shown: list[str], log: Path | None = None) -> dict:
    """Run an eval command that writes out/eval_info.json (once), keeping in it the command as `shown` and its
    wall time."""
    info = out / "eval_info.json"
    if not info.exists():
        wall = run(cmd, log=log)
        data = json.loads(info.read_text())
        data["twinarm_bench"] = {"command": shlex.join(shown), "wall_s": wall}
        info.write_text(json.dumps(data, indent=1))
    return json.loads(info.read_text())


def lerobot_eval(lerobot_bin: Path, policy: Path, out: Path, episodes: int, env_id: str = PICK) -> dict:
    """`lerobot-eval` of a LeRobot checkpoint on the twinarm sim; its eval_info.json (written once)."""
    cmd = [str(lerobot_bin / "lerobot-eval"), *plugin(env_id), f"--policy.path={policy}", "--policy.device=cpu",
           *ENSEMBLE, f"--eval.n_episodes={episodes}", "--eval.batch_size=10", "--eval.use_async_envs=false",
           f"--seed={SEED}", f"--output_dir={out}"]  # fmt: skip
    return timed_eval(cmd, out, cmd, log=out.parent / f"{out.name}.log")


def lerobot_episodes(info: dict) -> list[tuple[bool, float]]:
    metrics = info["per_task"][0]["metrics"]
    return list(zip(metrics["successes"], metrics["max_rewards"], strict=True))


def parity(a: argparse.Namespace) -> None:
    env_id = TASKS[a.task]
    work, default = PARITY[a.task]
    ckpt = a.checkpoint or default
    if not (ckpt / "model.safetensors").exists():
        raise SystemExit(f"--checkpoint {ckpt}: no model.safetensors; run the recipe (policy_results.py act, or "
                         "aloha --set chunk_size=100) first")
    exported = work / "lerobot_checkpoint"
    if not (exported / "model.safetensors").exists():
        work.mkdir(parents=True, exist_ok=True)
        run([*TWINARM, "export-lerobot", "--policy", str(ckpt), "--out", str(exported)])
    twin_out = work / "twinarm_eval"
    cmd = [*TWINARM, "eval", "--policy", str(ckpt), "--env", env_id, "--episodes", str(a.episodes), "--n-envs", "10",
           "--seed", str(SEED), "--videos", "10", "--threads", "2", "--out", str(twin_out), *EVAL_OVERRIDES["act"]]
    timed_eval(cmd, twin_out, ["twinarm", *cmd[len(TWINARM):]])
    lerobot_eval(a.lerobot_python.parent, exported, work / "lerobot_eval", a.episodes, env_id)


def train(a: argparse.Namespace) -> None:
    if not (DATASET / "meta" / "info.json").exists():
        raise SystemExit(f"{DATASET}: no dataset; run `python benchmarks/policy_results.py record` first")
    out = WORK / f"lerobot_act_{a.steps}_sim_eval"
    ckpt = out / "checkpoints" / "last" / "pretrained_model"
    if not ckpt.exists():
        cmd = [str(a.lerobot_python.parent / "lerobot-train"), "--dataset.repo_id=local/so101_pickcube_scripted_50",
               f"--dataset.root={DATASET}", *RECIPE, *plugin(PICK), f"--steps={a.steps}", f"--save_freq={a.steps}",
               f"--env_eval_freq={a.steps // 4}", "--eval.n_episodes=10", "--eval.batch_size=10",
               "--eval.use_async_envs=false", f"--log_freq={max(1, a.steps // 20)}",
               f"--output_dir={out}"]  # fmt: skip
        wall = run(cmd, log=WORK / f"{out.name}.log")
        (WORK / f"{out.name}.json").write_text(json.dumps({"command": shlex.join(cmd), "wall_s": wall}))
    lerobot_eval(a.lerobot_python.parent, ckpt, out / "lerobot_eval", a.episodes)


def periodic_evals(log: Path) -> list[tuple[int, float]]:
    """(step, pc_success) of each evaluation `lerobot-train` logged."""
    found, step = [], None
    for line in log.read_text(errors="replace").splitlines():
        if m := re.search(r"Eval policy at step (\d+)", line):
            step = int(m.group(1))
        elif step is not None and (m := re.search(r"Suite overall aggregated: (\{.*\})", line)):
            found.append((step, float(ast.literal_eval(m.group(1))["pc_success"])))
            step = None
    return found


def report(a: argparse.Namespace) -> None:
    lines = [
        "LeRobot 0.6.1's own tools on twinarm's sim, through the plugin `twinarm.lerobot_env` "
        "(`lerobot-eval|lerobot-train --env.discover_packages_path=twinarm.lerobot_env --env.type=twinarm "
        "--env.task=<id without twinarm/> --env.obs_type=state`).", ""]  # fmt: skip
    for task, (work, _) in PARITY.items():
        if not (work / "lerobot_eval" / "eval_info.json").exists():
            continue
        twin = json.loads((work / "twinarm_eval" / "eval_info.json").read_text())
        lero = json.loads((work / "lerobot_eval" / "eval_info.json").read_text())
        t_eps = [(e["success"], e["max_reward"]) for e in twin["per_episode"]]
        l_eps = lerobot_episodes(lero)
        n = min(len(t_eps), len(l_eps))
        same = sum(t[0] == r[0] for t, r in zip(t_eps, l_eps, strict=False))
        diff = max(abs(t[1] - r[1]) for t, r in zip(t_eps, l_eps, strict=False))
        lines += [
            f"Parity on {TASKS[task]}: one checkpoint (the ACT recipe, trained by twinarm), run by each project's eval "
            f"loop and ACT code over the same {n} seeds ({SEED}...), temporal ensembling 0.01 in both.",
            "Commands:", f"  {twin['twinarm_bench']['command']}", f"  {lero['twinarm_bench']['command']}", "",
            "| eval loop | ACT code | pc_success | avg_max_reward | wall time |", "|---|---|---|---|---|",
            f"| twinarm eval | twinarm | {twin['aggregated']['pc_success']:.0f} % | "
            f"{twin['aggregated']['avg_max_reward']:.3f} | {twin['twinarm_bench']['wall_s']:.0f} s |",
            f"| lerobot-eval (`--env.type=twinarm`) | LeRobot's, from `twinarm export-lerobot` | "
            f"{lero['overall']['pc_success']:.0f} % | {lero['overall']['avg_max_reward']:.3f} | "
            f"{lero['twinarm_bench']['wall_s']:.0f} s |", "",
            f"Same outcome in {same} of {n} episodes; largest difference of an episode's max reward: {diff:.2g}. "
            "(twinarm eval ends an episode at success, lerobot-eval runs every one to the episode limit, and it "
            "renders 10 videos of every step against twinarm's 10 of the first episodes: the wall times are not "
            "a like-for-like speed comparison.)", "",
        ]  # fmt: skip
    for log in sorted(WORK.glob("lerobot_act_*_sim_eval.log")):
        run_dir = WORK / log.stem
        final = run_dir / "lerobot_eval" / "eval_info.json"
        meta = json.loads((WORK / f"{log.stem}.json").read_text())
        curve = ", ".join(f"{s}: {p:.0f} %" for s, p in periodic_evals(log))
        lines += [
            f"lerobot-train, evaluating in twinarm's sim ({meta['wall_s'] / 60:.0f} min on this machine, "
            "evaluations included):", f"  {meta['command']}",
            f"Its periodic evaluations (10 episodes each, n_action_steps 10 as trained): {curve or 'none logged'}",
        ]  # fmt: skip
        if final.exists():
            lero = json.loads(final.read_text())
            lines += [f"Then  {lero['twinarm_bench']['command']}",
                      f"-> pc_success {lero['overall']['pc_success']:.0f} %, avg_max_reward "
                      f"{lero['overall']['avg_max_reward']:.3f} over {lero['overall']['n_episodes']} episodes.", ""]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["parity", "train", "report"])
    p.add_argument("--task", choices=sorted(TASKS), default="pick", help="parity: SO101-PickCube or Aloha-TransferCube")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="parity: a twinarm ACT checkpoint (default: the task's recipe run, policy_results.py)")
    p.add_argument("--steps", type=int, default=10_000, help="train: lerobot-train steps")
    p.add_argument("--episodes", type=int, default=50, help="evaluation episodes")
    p.add_argument("--lerobot-python", type=Path, default=DEFAULT_LEROBOT,
                   help="python of a venv with lerobot[training] and twinarm (pip install -e .)")
    a = p.parse_args()
    if a.stage != "report" and not a.lerobot_python.exists():
        raise SystemExit(f"--lerobot-python {a.lerobot_python}: not found (a venv with lerobot[training] and twinarm)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    {"parity": parity, "train": train, "report": report}[a.stage](a)


if __name__ == "__main__":
    main()
