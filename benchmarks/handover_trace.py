"""Where the ALOHA TransferCube hand-over succeeds or stalls: per episode, when the left gripper first touches
the cube in the air, when the right lets go (success), and how the episode ends.

    python benchmarks/handover_trace.py --policy RUN_OR_CHECKPOINT [--set FIELD=VALUE] [--episodes 20] [--seed 0]
    python benchmarks/handover_trace.py --policy expert            # the scripted demonstrator, for comparison

Episodes run one at a time in `twinarm/Aloha-TransferCube-v0` (state observations), each to its full 400 steps.
The end states: `both hold` (both grippers on the cube in the air: the right never let go), `dropped` (the cube
back on the table), `handed over` (success at the end), `other` (anything else, e.g. the cube resting in an open
gripper). `--set` changes inference fields as `twinarm eval --set`
does (e.g. `n_action_steps=31` to execute more of each Diffusion chunk).
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

import gymnasium as gym
import torch

import twinarm  # noqa: F401  (registers the env ids)
from twinarm.agents.env_io import EnvAdapter
from twinarm.agents.policy import Policy
from twinarm.cli.train_cmd import policy_kv
from twinarm.envs.experts import make_expert

ENV = "twinarm/Aloha-TransferCube-v0"
LEFT_IN_AIR, HANDED_OVER = 3.0, 4.0  # the task's staged reward


def _actor(env: gym.Env, name: str, overrides: dict):  # noqa: ANN202
    """A callable obs -> env action, and what to call after each env reset."""
    if name == "expert":
        expert = make_expert(env)
        return expert, expert.reset
    policy = Policy.from_pretrained(name, overrides=overrides).eval()
    adapter = EnvAdapter(env.unwrapped.spec_arm, policy.config.input_features)

    @torch.inference_mode()
    def act(obs):  # noqa: ANN001, ANN202
        return adapter.action_to_env(policy.select_action(adapter.obs_to_batch(obs)))

    return act, policy.reset


def trace(env: gym.Env, act, reset, seed: int) -> dict:  # noqa: ANN001
    """One full-length episode: the first step at each stage and the state at the end."""
    obs, _ = env.reset(seed=seed)
    reset()
    first: dict[float, int] = {}
    for t in range(env.spec.max_episode_steps):
        obs, reward, _, _, info = env.step(act(obs))
        first.setdefault(float(reward), t)
    if info["is_success"]:
        end = "handed over"
    elif info["cube_on_table"]:
        end = "dropped"
    elif info["touch_left"] and info["touch_right"]:
        end = "both hold"
    else:
        end = "other"
    return {"seed": seed, "left_touch": first.get(LEFT_IN_AIR), "handed_over": first.get(HANDED_OVER), "end": end}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="a run folder or checkpoint, or 'expert'")
    p.add_argument("--set", dest="overrides", type=policy_kv, action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="first episode seed (then seed+1, ...); also torch's seed")
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    env = gym.make(ENV, obs_type="state")
    act, reset = _actor(env, a.policy, dict(a.overrides))
    rows = []
    for k in range(a.episodes):
        rows.append(trace(env, act, reset, a.seed + k))
        r = rows[-1]
        print(f"seed {r['seed']:>4}  left touches at {r['left_touch']!s:>4}  handed over at {r['handed_over']!s:>4}  "
              f"end: {r['end']}", flush=True)
    gaps = [r["handed_over"] - r["left_touch"] for r in rows if r["handed_over"] is not None and r["left_touch"] is not None]
    ends = Counter(r["end"] for r in rows)
    print(f"\n{a.policy}: {a.episodes} episodes; at the end: "
          + ", ".join(f"{n} {e}" for e, n in ends.most_common()))
    if gaps:
        print(f"steps from the left's first touch to the hand-over: median {statistics.median(gaps):.0f}, "
              f"range {min(gaps)}-{max(gaps)} ({len(gaps)} episodes)")


if __name__ == "__main__":
    main()
