"""Env throughput, side by side in one run: raw MuJoCo physics, twinarm envs, and gym-aloha.

For each twinarm env: raw `mj_step` of the very same compiled scene at the same substeps (the floor
an env cannot beat), the env through `gymnasium.make` with state observations, with one 96x96
camera, and with every camera at 480x640. gym-aloha runs in its own venv (it pins its own MuJoCo
stack), at its defaults. Only stepping is timed (each rollout starts from an untimed reset, as in the
gym-aloha script), best-of-N over interleaved repeats to damp machine noise. Raw physics and the
state-obs env, whose ratio is the overhead target, get many short rounds of their own, back to back
in alternating order; the overhead is the median over rounds of each state round's time against its
raw partner's (with the interquartile range), which a single lucky or unlucky round on a shared
machine cannot move, and, for comparison, the ratio of the best rounds. The pixel cases share theirs.

    python benchmarks/env_throughput.py [--env twinarm/SO101-PickCube-v0 ...] [--aloha-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import twinarm  # noqa: E402,F401

DEFAULT_ENVS = ["twinarm/SO101-PickCube-v0"]
DEFAULT_ALOHA_PYTHON = "/root/gym-aloha-venv/bin/python"

#: A timed case: resets untimed, steps, and returns (steps, seconds spent stepping).
Case = Callable[[], tuple[int, float]]


def timed_rounds(fns: dict[str, Case], repeats: int) -> dict[str, tuple[int, list[float]]]:
    """Each case's step count and its stepping time in each of `repeats` interleaved rounds."""
    out: dict[str, tuple[int, list[float]]] = {name: (0, []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            steps, seconds = fn()
            out[name] = (steps, out[name][1] + [seconds])
    return out


def paired_rounds(a: Case, b: Case, repeats: int) -> tuple[tuple[int, np.ndarray], tuple[int, np.ndarray]]:
    """Each case's step count and stepping times over `repeats` rounds of the two back to back; the order
    alternates so that drift cancels in the per-round ratio."""
    ta, tb = np.empty(repeats), np.empty(repeats)
    steps_a = steps_b = 0
    for i in range(repeats):
        if i % 2:
            (steps_b, tb[i]), (steps_a, ta[i]) = b(), a()
        else:
            (steps_a, ta[i]), (steps_b, tb[i]) = a(), b()
    return (steps_a, ta), (steps_b, tb)


def best_rate(fns: dict[str, Case], repeats: int) -> dict[str, float]:
    """Steps/s of each case, best of `repeats` interleaved rounds."""
    return {name: steps / min(times) for name, (steps, times) in timed_rounds(fns, repeats).items()}


def twinarm_cases(env_id: str, steps: int) -> dict[str, Case]:
    """Raw physics and the env at three observation settings, all replaying one action sequence."""
    state_env = gym.make(env_id, obs_type="state")
    rng = np.random.default_rng(0)
    spec = state_env.unwrapped.spec_arm
    actions = [rng.uniform(spec.lower, spec.upper).astype(np.float32) for _ in range(steps)]

    phys = state_env.unwrapped.physics
    state_env.reset(seed=0)
    start = phys.get_state()  # raw physics starts from the env's own reset state: same contacts
    # ...and steps the env's own MjData, so that both sides run on the very same memory (each env round
    # resets it): only the env's own work differs, not where the allocator happened to put a second MjData.
    model, data = phys.model, phys.data
    spec_state = mujoco.mjtState.mjSTATE_INTEGRATION
    ctrl = [phys.spec_to_qpos(a) for a in actions]
    ids, nsub = phys.actuator_ids, phys.n_substeps

    def raw() -> tuple[int, float]:
        mujoco.mj_setState(model, data, start, spec_state)
        t = time.perf_counter()
        for c in ctrl:
            data.ctrl[ids] = c
            mujoco.mj_step(model, data, nsub)
        return steps, time.perf_counter() - t

    small = gym.make(env_id, obs_type="pixels_agent_pos", image_size=(96, 96), cameras=[spec.cameras[0].name])
    full = gym.make(env_id, obs_type="pixels_agent_pos")
    cams = ", ".join(c.name for c in spec.cameras)
    return {
        f"raw mj_step x{nsub} (same scene)": raw,
        "twinarm state obs": _replay(state_env, actions),
        f"twinarm pixels 96x96 ({spec.cameras[0].name})": _replay(small, actions),
        f"twinarm pixels 480x640 ({cams})": _replay(full, actions),
    }


def gym_aloha_rate(python: str, task: str, steps: int, repeats: int) -> float | None:
    """gym-aloha steps/s at its defaults, measured in its own venv; None when the venv is absent."""
    if not Path(python).exists():
        return None
    return gym_aloha_variant_rate(python, task, "defaults", steps, repeats)


GYM_ALOHA_VARIANTS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np
    os.environ.setdefault("MUJOCO_GL", "egl")
    import gymnasium as gym, gym_aloha  # noqa: F401
    task, steps, repeats, variant = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    env = gym.make(f"gym_aloha/{task}")
    physics = env.unwrapped._env.physics
    if variant == "shadows_off":
        physics.model.vis.quality.shadowsize = 0
        physics.model.vis.quality.offsamples = 0
    elif variant == "no_render":  # gym-aloha has no state-only obs_type; stub the renderer out
        blank = np.zeros((480, 640, 3), np.uint8)
        physics.render = lambda *a, **k: blank
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    best = float("inf")
    for _ in range(repeats):
        env.reset(seed=0)
        t = time.perf_counter()
        for a in actions:
            env.step(a)
        best = min(best, time.perf_counter() - t)
    physics.free()
    print(json.dumps({"steps_per_s": steps / best}))
    """
)

#: twinarm ALOHA id -> the gym-aloha id of the same ACT task.
ALOHA_PAIRS = {
    "twinarm/Aloha-TransferCube-v0": "AlohaTransferCube-v0",
    "twinarm/Aloha-Insertion-v0": "AlohaInsertion-v0",
}


def all_arm_env_ids() -> list[str]:
    """One manipulation id per registered arm (PickCube for single arms, every ALOHA task)."""
    from twinarm.registration import ENV_ENTRIES

    return [e.sim_id for e in ENV_ENTRIES if e.task in ("PickCube", "TransferCube", "Insertion")]


def gym_aloha_variant_rate(python: str, task: str, variant: str, steps: int, repeats: int) -> float:
    """gym-aloha steps/s in its own venv: `defaults`, `shadows_off` (no shadow map, no MSAA) or `no_render`."""
    out = subprocess.run(
        [python, "-c", GYM_ALOHA_VARIANTS_SCRIPT, task, str(steps), str(repeats), variant],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "MUJOCO_GL": "egl"},
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"gym-aloha benchmark ({variant}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]


def _replay(env: gym.Env, actions: list[np.ndarray]) -> Case:
    def run() -> tuple[int, float]:
        env.reset(seed=0)
        t = time.perf_counter()
        for a in actions:
            env.step(a)
        return len(actions), time.perf_counter() - t

    return run


def aloha_comparison(
    python: str, steps: int, aloha_steps: int, repeats: int
) -> list[tuple[str, str, float, str]]:
    """twinarm ALOHA vs gym-aloha on the same ACT tasks, with the issue's targets next to each ratio."""
    rows: list[tuple[str, str, float, str]] = []
    if not Path(python).exists():
        return [("gym_aloha", f"not measured: no gym-aloha venv at {python}", float("nan"), "")]
    for ours, theirs in ALOHA_PAIRS.items():
        state = gym.make(ours, obs_type="state")
        spec = state.unwrapped.spec_arm
        rng = np.random.default_rng(0)
        actions = [rng.uniform(spec.lower, spec.upper).astype(np.float32) for _ in range(steps)]
        envs = {"state obs": state, "pixels 480x640 (top)": gym.make(ours, obs_type="pixels_agent_pos")}
        rates = best_rate({k: _replay(e, actions) for k, e in envs.items()}, repeats)
        base = {
            v: gym_aloha_variant_rate(python, theirs, v, aloha_steps, 3)
            for v in ("defaults", "shadows_off", "no_render")
        }
        for v, r in base.items():
            rows.append((f"gym_aloha/{theirs}", f"gym-aloha {v}", r, "steps/s"))
        for k, r in rates.items():
            rows.append((ours, f"twinarm {k}", r, "steps/s"))
        rows.append(
            (
                ours,
                "state obs / gym-aloha no_render",
                rates["state obs"] / base["no_render"],
                "x (target >= 2)",
            )
        )
        px = rates["pixels 480x640 (top)"]
        rows.append((ours, "480x640 / gym-aloha defaults", px / base["defaults"], "x (target >= 10)"))
        rows.append((ours, "480x640 / gym-aloha shadows_off", px / base["shadows_off"], "x (target >= 1.5)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", action="append", help="twinarm env id (repeatable)")
    parser.add_argument("--steps", type=int, default=150, help="steps per timed rollout")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of the pixel cases (best is kept)")
    parser.add_argument(
        "--state-repeats", type=int, default=100, help="paired raw/state-obs rounds (median ratio; best for the rates)"
    )
    parser.add_argument(
        "--aloha-python", default=DEFAULT_ALOHA_PYTHON, help="python of a venv with gym-aloha"
    )
    parser.add_argument("--aloha-steps", type=int, default=60, help="steps per gym-aloha rollout")
    parser.add_argument(
        "--all-arms", action="store_true", help="every arm's manipulation ids, plus the ALOHA comparison"
    )
    args = parser.parse_args(argv)

    load_start = os.getloadavg()
    rows: list[tuple[str, str, float, str]] = []
    env_ids = all_arm_env_ids() if args.all_arms else (args.env or DEFAULT_ENVS)
    for env_id in env_ids:
        cases = twinarm_cases(env_id, args.steps)
        names = list(cases)
        # Raw physics and state obs: their rates come from the same paired rounds as the overhead.
        (raw_steps, raw_t), (state_steps, state_t) = paired_rounds(cases[names[0]], cases[names[1]], args.state_repeats)
        rates = {names[0]: raw_steps / raw_t.min(), names[1]: state_steps / state_t.min()}
        rates.update(best_rate({n: cases[n] for n in names[2:]}, args.repeats))
        q25, median, q75 = np.percentile(state_t / raw_t - 1, [25, 50, 75])
        raw = rates[names[0]]
        for name in names:
            rows.append((env_id, name, rates[name], f"{rates[name] / raw:.2f}x raw"))
        rows.append((env_id, "state-obs env overhead over raw physics", median * 100,
                     f"% (target <= 15%); median of {args.state_repeats} paired rounds, IQR {q25 * 100:.1f}-{q75 * 100:.1f} %"))  # fmt: skip
        rows.append((env_id, "  same, from the best rounds", (raw / rates[names[1]] - 1) * 100, "%"))
        if args.all_arms:
            continue
        aloha = gym_aloha_rate(args.aloha_python, "AlohaTransferCube-v0", args.aloha_steps, 3)
        if aloha is None:
            rows.append(
                ("gym_aloha/AlohaTransferCube-v0", "not measured: no gym-aloha venv", float("nan"), "")
            )
        else:
            rows.append(
                ("gym_aloha/AlohaTransferCube-v0", "gym-aloha defaults (480x640 top)", aloha, "1.00x")
            )
            for name in names[2:]:
                rows.append((env_id, f"{name} vs gym-aloha defaults", rates[name] / aloha, "x"))

    if args.all_arms:
        rows += aloha_comparison(args.aloha_python, args.steps, args.aloha_steps, args.repeats)

    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'env':<{w0}}  {'case':<{w1}}  {'value':>10}  unit/ratio")
    print("-" * (w0 + w1 + 30))
    for env_id, name, value, note in rows:
        print(f"{env_id:<{w0}}  {name:<{w1}}  {value:>10.1f}  {note}")
    print(
        f"\nmachine: {os.cpu_count()} CPUs, mujoco {mujoco.__version__}, MUJOCO_GL={os.environ['MUJOCO_GL']}"
    )
    load = " -> ".join("/".join(f"{x:.2f}" for x in la) for la in (load_start, os.getloadavg()))
    print(
        f"load average (1/5/15 min) at start -> end: {load}; {args.state_repeats} paired raw/state rounds, best of {args.repeats} for the pixel rates"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
