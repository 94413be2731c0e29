"""Scripted-expert success over seeded episodes, per env id (the README's expert table comes from here).

    python benchmarks/expert_success.py --episodes 100 [--env twinarm/SO101-PickCube-v0 ...]

Seeds are first_seed .. first_seed+episodes-1; state observations (the expert reads sim state).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tqdm import tqdm

import twinarm  # noqa: F401
from twinarm.envs.experts import expert_episodes
from twinarm.registration import ENV_ENTRIES


def expert_success(env_id: str, episodes: int, first_seed: int = 0) -> dict[str, float]:
    """Success rate and mean episode return of the scripted expert on `env_id`."""
    t0 = time.perf_counter()
    seeds = range(first_seed, first_seed + episodes)
    runs = list(tqdm(expert_episodes(env_id, seeds), total=episodes, desc=env_id, unit="ep", leave=False))
    return {
        "episodes": episodes,
        "success": sum(ok for ok, _ in runs) / episodes,
        "avg_sum_reward": sum(ret for _, ret in runs) / episodes,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", action="append", help="env id (repeatable); default: every registered sim id")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    ids = args.env or [e.sim_id for e in ENV_ENTRIES]
    results = {}
    print(f"{'env id':<36} {'success':>8} {'avg return':>11} {'episodes':>9} {'time':>8}")
    for env_id in ids:
        r = expert_success(env_id, args.episodes, args.first_seed)
        results[env_id] = r
        print(f"{env_id:<36} {r['success']:>8.0%} {r['avg_sum_reward']:>11.2f} {r['episodes']:>9} {r['seconds']:>7.0f}s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
