"""`twinarm demo`: roll out the scripted expert on a sim env and write an mp4 plus a summary line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from twinarm.cli.config import add_config_arg, at_least, known_env_id, write_resolved_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="roll out the scripted expert and save a video",
        description="Roll out the scripted expert on a simulated arm (default: SO101-PickCube) and write "
        "an mp4 with every camera side by side (<env id without twinarm/>.mp4 in --out, beside config.json, the "
        "resolved options), plus a one-line summary (success rate, steps/s).",
    )
    p.add_argument("--env", type=known_env_id, default="twinarm/SO101-PickCube-v0", help="sim env id (see `twinarm envs`)")
    p.add_argument("--episodes", type=at_least(1), default=3, help="number of episodes to roll out")
    p.add_argument("--seed", type=at_least(0), default=0, help="seed of the first episode (then seed+1, ...)")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"),
                   help="output folder for the mp4 and config.json (the resolved options)")
    p.add_argument("--height", type=at_least(1), default=240, help="rendered image height")
    p.add_argument("--width", type=at_least(1), default=320, help="rendered image width")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run_demo(env_id: str, episodes: int, seed: int, out: Path, image_size: tuple[int, int]) -> str:
    """Roll out the expert, write `<out>/<env id without twinarm/>.mp4` (e.g. `SO101-PickCube-v0.mp4`), return the
    summary line."""
    import twinarm  # noqa: F401  (registers the ids)
    from twinarm.datasets_io.video import EpisodeEncoder
    from twinarm.envs.experts import make_expert

    if episodes < 1:
        raise SystemExit("--episodes must be at least 1")
    env = gym.make(env_id, obs_type="pixels_agent_pos", image_size=image_size)
    expert = make_expert(env)
    cams = list(env.observation_space["pixels"].spaces)
    h, w = image_size
    fps = env.unwrapped.metadata["render_fps"]
    encoder = EpisodeEncoder(w * len(cams), h, fps)
    successes, steps, t0 = 0, 0, time.perf_counter()
    for ep in tqdm(range(episodes), desc=f"demo {env_id}", unit="episode"):
        obs, info = env.reset(seed=seed + ep)
        expert.reset()
        done = False
        while not done:
            encoder.add(np.concatenate([obs["pixels"][c] for c in cams], axis=1))
            obs, _, terminated, truncated, info = env.step(expert(obs))
            steps += 1
            done = terminated or truncated
        successes += bool(info["is_success"])
    elapsed = time.perf_counter() - t0
    env.close()
    out.mkdir(parents=True, exist_ok=True)
    video = out / f"{env_id.split('/')[-1]}.mp4"
    video.write_bytes(encoder.finish())
    return (
        f"{env_id}: expert success {successes}/{episodes}, {steps} steps at {steps / elapsed:.0f} steps/s "
        f"(cameras {', '.join(cams)} at {h}x{w}); video: {video}"
    )


def run(args: argparse.Namespace) -> int:
    from twinarm.registration import entry_for

    entry = entry_for(args.env)
    if args.env != entry.sim_id:
        args._parser.error(f"--env {args.env} is the real arm; demo rolls out the scripted expert in sim "
                           f"({entry.sim_id})")  # fmt: skip
    if args.out.exists() and not args.out.is_dir():
        args._parser.error(f"--out {args.out} is a file; give a folder for the video")
    write_resolved_config(args, args.out)
    print(run_demo(args.env, args.episodes, args.seed, args.out, (args.height, args.width)))
    return 0
