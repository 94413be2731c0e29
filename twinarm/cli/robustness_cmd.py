"""`twinarm robustness`: evaluate a policy in sim under one kind of sim-to-real perturbation at a time (lighting,
colours, camera pose, object mass, friction and size, servo gains, encoder noise, latency, control jitter, and
the sim2real preset), each over the same seeds as the unperturbed run, to find what it cannot stand before it
meets a real arm.

Each perturbation is a named randomization (`twinarm.envs.perturbations`, also `--randomization NAME` on eval,
record and train), drawn per episode from its seed; every row seeds torch as `twinarm eval` does (the same
sampling noise). Camera-only perturbations are skipped for a policy that reads no camera, object ones for a
task without objects (Reach). The table gives each one's pc_success and how many of the unperturbed run's
successes it lost; `robustness.json` holds every episode, `robustness.png` the bars. `--sweep NAME` turns one
knob up step by step instead (latency 0-6 steps, servo gain 0.4-1.5x, encoder noise 0-4 deg, jitter, object
mass, camera shift): how much of it the policy stands, as a curve.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from twinarm.cli.config import (
    add_camera_poses_arg,
    add_config_arg,
    add_dynamics_arg,
    at_least,
    env_entry,
    known_env_id,
    load_camera_poses_arg,
    load_dynamics,
    write_resolved_config,
)
from twinarm.cli.eval_cmd import add_thread_args, feature_rename
from twinarm.cli.train_cmd import policy_kv

EPILOG = """examples:
  twinarm robustness --policy outputs/act/checkpoints/last/pretrained_model --env twinarm/SO101-PickCube-v0
  twinarm robustness --policy DIR --env twinarm/SO101-PickCube-v0 --only latency-1 latency-2 servos --episodes 50"""


def register(sub: argparse._SubParsersAction) -> None:
    from twinarm.envs.perturbations import PERTURBATIONS, SWEEPS

    p = sub.add_parser(
        "robustness", help="evaluate a policy in sim under each sim-to-real perturbation in turn",
        description=__doc__.split("\n\n", 1)[1].strip() + "\n\nperturbations:\n" + "\n".join(
            f"  {n:<16}{v.what}" for n, v in PERTURBATIONS.items()),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--policy", required=True,
                   help="policy checkpoint (a pretrained_model folder, twinarm's or LeRobot's) or Hub repo id")
    p.add_argument("--env", type=known_env_id, required=True, help="sim env id")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--only", nargs="+", default=None, choices=list(PERTURBATIONS), metavar="NAME",
                       help="these perturbations only (nominal is always run first, as the reference)")
    which.add_argument("--sweep", default=None, choices=list(SWEEPS),
                       help="instead, one knob turned up step by step: " + "; ".join(
                           f"{n} ({', '.join(label for label, _ in v.points)})" for n, v in SWEEPS.items()))
    p.add_argument("--episodes", type=at_least(1), default=20, help="episodes per perturbation (default: 20)")
    p.add_argument("--n-envs", type=at_least(1), default=10, help="episodes run in parallel (default: 10)")
    p.add_argument("--seed", type=at_least(0), default=100_000, help="seed of the first episode, the same for every row")
    p.add_argument("--set", dest="policy_overrides", type=policy_kv, action="append", default=[],
                   metavar="FIELD=VALUE", help="override an inference setting of the policy config")
    p.add_argument("--rename-feature", dest="rename_features", type=feature_rename, nargs="+", action="extend",
                   default=[], metavar="OLD=NEW", help="a policy's camera under the env's name, one or more pairs "
                   "(the flag may repeat), as on eval")
    p.add_argument("--image-size", type=at_least(1), nargs=2, default=None, metavar=("H", "W"),
                   help="env image size (default: the size the policy was trained on)")
    p.add_argument("--videos", type=at_least(0), default=0, help="episodes per perturbation saved as mp4 (default: 0)")
    p.add_argument("--max-steps", type=at_least(1), default=None, help="cut episodes at this many steps (default: the env's)")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available), cpu, cuda, cuda:1, ...")
    add_thread_args(p)
    p.add_argument("--out", type=Path, default=Path("outputs/robustness"),
                   help="output folder for robustness.json, robustness.png, config.json (the resolved options) and "
                   "videos/")
    add_dynamics_arg(p, "every run (perturbations then draw around it)")
    add_camera_poses_arg(p, "every run (camera perturbations then draw around them)")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    import twinarm  # noqa: F401  (registers the env ids)
    from twinarm.agents.eval import evaluate, obs_type_for
    from twinarm.agents.policy import resolve_checkpoint
    from twinarm.agents.thread_budget import budget_for
    from twinarm.cli.eval_cmd import load_policy, set_threads
    from twinarm.cli.train_cmd import device_arg
    from twinarm.envs.perturbations import PERTURBATIONS, SWEEPS

    parser = args._parser
    entry = env_entry(parser, args.env)
    if args.env != entry.sim_id:
        parser.error(f"{args.env} is the real arm; robustness perturbs the sim ({entry.sim_id})")
    try:
        args.policy = resolve_checkpoint(args.policy)
    except FileNotFoundError as exc:
        parser.error(f"--policy: {exc}")
    set_threads(args)
    policy = load_policy(args).to(device_arg(args))
    budget = budget_for(policy.device, args.yield_cores)
    dynamics = load_dynamics(args.dynamics, entry.arm)
    camera_poses = load_camera_poses_arg(args.camera_poses, entry.arm)
    pixels, objects = obs_type_for(policy) != "state", _has_objects(args.env)
    skipped: dict[str, str] = {}
    if args.sweep is not None:
        sweep = SWEEPS[args.sweep]
        if (sweep.visual and not pixels) or (sweep.objects and not objects):
            parser.error(f"--sweep {args.sweep}: " + ("the policy reads no camera" if sweep.visual else
                                                      f"{args.env}'s task has no objects"))  # fmt: skip
        runs = [(label, sweep.what, r) for label, r in sweep.points]
        reference = sweep.reference
    else:
        names = ["nominal", *[n for n in (args.only or PERTURBATIONS) if n != "nominal"]]
        skipped = {n: "the policy reads no camera" for n in names if PERTURBATIONS[n].visual and not pixels}
        skipped.update({n: "the task has no objects" for n in names if PERTURBATIONS[n].objects and not objects})
        runs = [(n, PERTURBATIONS[n].what, PERTURBATIONS[n].randomization) for n in names if n not in skipped]
        reference = "nominal"
    write_resolved_config(args, args.out)
    rows: dict[str, dict[str, Any]] = {}
    for name, what, randomization in runs:
        began = time.perf_counter()
        kwargs = {"randomization": randomization.to_dict(), **({"dynamics": dynamics} if dynamics else {}),
                  **({"camera_poses": camera_poses} if camera_poses else {})}
        # every row samples the same noise (Diffusion, TD-MPC): `evaluate` seeds it with `seed`, as `twinarm eval`
        res = evaluate(policy, args.env, n_episodes=args.episodes, n_envs=args.n_envs, seed=args.seed,
                       videos_dir=args.out / "videos" / name if args.videos else None, max_videos=args.videos,
                       image_size=tuple(args.image_size) if args.image_size else None, env_kwargs=kwargs,
                       max_steps=args.max_steps, thread_budget=budget)  # fmt: skip
        rows[name] = {"what": what, **res.aggregated, "successes": [bool(s) for s in res.successes],
                      "threads": {str(n): k for n, k in sorted(res.threads.items())}}  # policy calls per count
        print(f"{name:<16} {res.aggregated['pc_success']:5.1f} %  ({time.perf_counter() - began:.0f} s)", flush=True)
    base = rows[reference]["successes"]
    for row in rows.values():
        row["lost"] = sum(a and not b for a, b in zip(base, row["successes"], strict=True))
        row["gained"] = sum(b and not a for a, b in zip(base, row["successes"], strict=True))
    result = {"policy": str(args.policy), "env": args.env, "episodes": args.episodes, "seed": args.seed,
              "dynamics": args.dynamics, "camera_poses": args.camera_poses, "sweep": args.sweep, "reference": reference, "skipped": skipped, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness.json").write_text(json.dumps(result, indent=2) + "\n")
    title = f"{policy.name} on {args.env}, {args.episodes} episodes each" + (f": {sweep.what}" if args.sweep else "")
    png = plot_rows(rows, args.out / "robustness.png", title, reference, line=args.sweep is not None)
    print()
    print(format_rows(rows, skipped, reference))
    print(f"wrote {args.out / 'robustness.json'}" + (f", {png}" if png else ""))
    return 0


def _has_objects(env_id: str) -> bool:
    """Whether the task has the objects (free bodies: a cube, a peg) the object perturbations change, as the
    randomizer finds them (`ModelNominal.object_bodies`)."""
    import gymnasium as gym

    from twinarm.envs.randomization import ModelNominal

    env = gym.make(env_id, obs_type="state")
    try:
        return ModelNominal.capture(env.unwrapped.physics.model).object_bodies.size > 0
    finally:
        env.close()


def format_rows(rows: dict[str, dict[str, Any]], skipped: dict[str, str], reference: str = "nominal") -> str:
    """The table: each row's pc_success, the reference row's successes it lost and the ones it gained."""
    w = max(len(n) for n in (*rows, *skipped, "perturbation")) + 2
    lines = [f"{'perturbation':<{w}}{'pc_success':>11}{'lost':>6}{'gained':>8}{'avg_max_reward':>16}  what "
             f"(lost / gained: against {reference})"]
    for name, r in rows.items():
        lines.append(f"{name:<{w}}{r['pc_success']:>10.1f}%{r['lost']:>6}{r['gained']:>8}{r['avg_max_reward']:>16.3f}  "
                     f"{r['what']}")
    lines += [f"{name:<{w}}{'-':>11}{'':>6}{'':>8}{'':>16}  skipped: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


def plot_rows(rows: dict[str, dict[str, Any]], out: Path, title: str, reference: str = "nominal",
              line: bool = False) -> Path | None:  # fmt: skip
    """Horizontal bars of pc_success per perturbation, the reference one as a line (a sweep: pc_success against
    the knob's steps); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if line:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        try:
            x = range(len(rows))
            ax.plot(x, [r["pc_success"] for r in rows.values()], marker="o")
            ax.set_xticks(list(x), list(rows), fontsize=8)
            ax.axvline(list(rows).index(reference), color="tab:gray", ls="--", lw=1)
            ax.set_ylim(0, 100)
            ax.set_ylabel("pc_success (%)")
            ax.set_title(title, fontsize=8)
            fig.tight_layout()
            fig.savefig(out, dpi=100)
        finally:
            plt.close(fig)
        return out
    names = list(rows)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    try:
        values = [rows[n]["pc_success"] for n in names]
        ax.barh(names, values, color=["tab:gray" if n == reference else "tab:blue" for n in names])
        for i, v in enumerate(values):
            ax.text(min(v + 1, 88), i, f"{v:.0f} %", va="center", fontsize=7)
        ax.axvline(rows[reference]["pc_success"], color="tab:gray", ls="--", lw=1)
        ax.set_xlim(0, 100)
        ax.set_xlabel("pc_success (%)")
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=8)
        fig.tight_layout()
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out
