"""Policy speed against LeRobot, same configuration, same machine, one run.

ACT: LeRobot defaults (chunk 100, dim 512, 4 enc / 1 dec, VAE latent 32, ResNet-18 with frozen batch norms,
as LeRobot builds it) with one 240x320 camera and a 14-D state; Diffusion: defaults (horizon 64, n_obs 2,
down_dims 512/1024/2048, ResNet-18 with group norms, twinarm's default and LeRobot's `use_group_norm=True`,
the original recipe for a backbone trained from scratch) on the same inputs, sampling with DDIM at 10 steps
on both sides; TD-MPC: defaults with an 84x84 image + 14-D state. With these settings the two sides build
the same architecture with the same parameter count (printed in the table).
Training step = forward + backward + grad clip + AdamW step (batch 8); inference = a full chunk from
a reset policy at batch 1 (TD-MPC: one CEM planning step). "infer int8" times twinarm's same weights after
`agents.int8.enable_int8` (what `twinarm eval --int8` runs: int8 linear layers, 1-D convolutions and ResNet-18)
against LeRobot's float32 inference, in the same rounds. Both sides run at 2 torch threads, random
init (LeRobot with `pretrained_backbone_weights=None`, since its defaults download ImageNet weights), and
in two live worker processes timed turn by turn (twinarm, LeRobot, twinarm, ...) so that load from
other jobs hits both alike; calls shorter than half a second run in bursts of equal length on both sides
(each turn's time is their mean, so one short stall weighs no more than in a slow call); each number is the
minimum over repeats (the least-disturbed turn), medians are printed too, and "paired" is the median over
rounds of the two sides' back-to-back time ratio.
twinarm's worker tunes glibc's malloc to keep freed memory (`agents.allocator`), as `twinarm train` and
`twinarm eval` do; `--lerobot-malloc` gives LeRobot's worker the same thresholds (through glibc's
MALLOC_*_THRESHOLD_ variables), to show how much of a ratio that setting accounts for. Each
run is added at the top of the results file, labelled with the date and the load average before and
after it (earlier runs are kept below). Under the table, each policy's float32 floor (`float32_floor.py`):
twinarm's matmul and convolution FLOPs per inference over this CPU's best float32 matmul rate, the least
time any float32 code for that network can take here, set against the 0.5x target.

`--precision bf16` runs the same comparison in mixed precision on both sides: training forward passes and whole
inference calls under torch's CPU bf16 autocast (twinarm's `--precision bf16`; LeRobot's `use_amp`, which its
training applies through accelerate's autocast and its evaluation around `select_action`). It needs a CPU with
native bf16 arithmetic (AVX512-BF16 or AMX); results go to `benchmarks/results/policy_speed_bf16.txt`.

    python benchmarks/policy_speed.py                      # table -> benchmarks/results/policy_speed.txt
    python benchmarks/policy_speed.py --lerobot-python /root/lerobot-venv/bin/python
    python benchmarks/policy_speed.py --precision bf16     # -> benchmarks/results/policy_speed_bf16.txt
    python benchmarks/policy_speed.py --device cuda        # on a GPU -> benchmarks/results/policy_speed_cuda.txt

`--device cuda` runs both sides on the GPU (a lent one: `benchmarks/policy_speed_gpu.sh`), with TF32 and cuDNN's
autotuner on for both, as `twinarm train` and `lerobot-train` set them; each timed turn ends when the GPU has
finished its queued work. The 0.8x / 0.5x targets are the CPU's; on a GPU the table says where twinarm stands.

The script also runs as a worker (`--worker twinarm|lerobot --policy NAME`) inside either venv; the
worker imports only its own side, so the LeRobot venv does not need twinarm installed.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "policy_speed.txt"
RESULTS_BF16 = ROOT / "benchmarks" / "results" / "policy_speed_bf16.txt"
RESULTS_CUDA = ROOT / "benchmarks" / "results" / "policy_speed_cuda.txt"
DEFAULT_LEROBOT = Path(os.environ.get("TWINARM_LEROBOT_PYTHON", "/root/lerobot-venv/bin/python"))
POLICIES = ("act", "diffusion", "tdmpc")
STATE_DIM = ACTION_DIM = 14
IMAGE = (3, 240, 320)
TDMPC_IMAGE = (3, 84, 84)
BATCH = 8
THREADS = 2
#: A timed turn of fast calls runs back to back for at least this long (the slowest side's calls).
MIN_TURN_S = 0.5
MAX_CALLS_PER_TURN = 20


# ----- shared by both workers (torch only) -------------------------------------------------------------
def batches(policy: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training batch, single-step observation) in LeRobot's layout, seeded."""
    import torch

    g = torch.Generator().manual_seed(0)
    b = BATCH
    if policy == "act":
        train = {
            "observation.state": torch.randn(b, STATE_DIM, generator=g),
            "observation.images.top": torch.rand(b, *IMAGE, generator=g),
            "action": torch.randn(b, 100, ACTION_DIM, generator=g),
            "action_is_pad": torch.zeros(b, 100, dtype=torch.bool),
        }
        obs = {k: train[k][:1] for k in ("observation.state", "observation.images.top")}
    elif policy == "diffusion":
        train = {
            "observation.state": torch.randn(b, 2, STATE_DIM, generator=g),
            "observation.images.top": torch.rand(b, 2, *IMAGE, generator=g),
            "action": torch.randn(b, 64, ACTION_DIM, generator=g).clamp(-1, 1),
            "action_is_pad": torch.zeros(b, 64, dtype=torch.bool),
        }
        obs = {k: train[k][:1, 0] for k in ("observation.state", "observation.images.top")}
    else:
        h = 5
        train = {
            "observation.state": torch.randn(b, h + 1, STATE_DIM, generator=g),
            "observation.image": torch.rand(b, h + 1, *TDMPC_IMAGE, generator=g),
            "action": torch.rand(b, h, ACTION_DIM, generator=g) * 2 - 1,
            "next.reward": torch.randn(b, h, generator=g),
            "observation.state_is_pad": torch.zeros(b, h + 1, dtype=torch.bool),
            "action_is_pad": torch.zeros(b, h, dtype=torch.bool),
            "next.reward_is_pad": torch.zeros(b, h, dtype=torch.bool),
            "index": torch.arange(b),
        }
        obs = {
            "observation.state": train["observation.state"][:1, 0],
            "observation.image": train["observation.image"][:1, 0],
        }
    return train, obs


def autocast(precision: str, device: str = "cpu") -> Any:
    """The context both sides run forward passes and inference under: none for float32, torch's bf16
    autocast for bf16 (what LeRobot's `use_amp` does, through accelerate in training)."""
    import contextlib

    import torch

    return torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def device_setup(device: str) -> None:
    """Both workers' torch settings: 2 threads; on a GPU, TF32 matmuls and convolutions and cuDNN's autotuner,
    as both projects' training commands set them (`twinarm train`, `lerobot-train`)."""
    import torch

    torch.set_num_threads(THREADS)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def on_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()}


def train_step_fn(
    policy: Any, opt: Any, batch: dict[str, Any], after: Callable[[], None] | None, precision: str = "float32",
    device: str = "cpu",
) -> Callable[[], None]:
    import torch

    def step() -> None:
        with autocast(precision, device):  # the forward pass only, as in mixed-precision training on both sides
            loss, _ = policy.forward(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        opt.step()
        if after is not None:
            after()

    return step


# ----- twinarm worker ------------------------------------------------------------------------------------
def twinarm_setup(
    name: str, precision: str = "float32", device: str = "cpu"
) -> tuple[int, Callable[[], None], Callable[[], None], Callable[[], None] | None, Callable[[], dict[str, float]] | None]:
    import torch

    from twinarm.agents.allocator import keep_freed_memory
    from twinarm.agents.features import Feature
    from twinarm.agents.int8 import enable_int8
    from twinarm.agents.policy import count_parameters
    from twinarm.agents.registry import make_policy

    device_setup(device)
    keep_freed_memory()  # as twinarm's train and eval commands do
    torch.manual_seed(0)
    train, obs = (on_device(b, device) for b in batches(name))
    state = {"observation.state": Feature("STATE", (STATE_DIM,))}
    out = {"action": Feature("ACTION", (ACTION_DIM,))}
    if name == "tdmpc":
        # twinarm keys images by camera name; map LeRobot's single `observation.image` onto one camera.
        train = {("observation.images.top" if k == "observation.image" else k): v for k, v in train.items()}
        obs = {("observation.images.top" if k == "observation.image" else k): v for k, v in obs.items()}
        inputs = {**state, "observation.images.top": Feature("VISUAL", TDMPC_IMAGE)}
        policy = make_policy("tdmpc", input_features=inputs, output_features=out)
    elif name == "act":
        # LeRobot's ACT backbone uses frozen batch norms (affine terms and statistics as buffers).
        policy = make_policy(
            "act",
            input_features={**state, "observation.images.top": Feature("VISUAL", IMAGE)},
            output_features=out,
            backbone_norm="frozen_batch_norm",
        )
    else:
        policy = make_policy(
            "diffusion", input_features={**state, "observation.images.top": Feature("VISUAL", IMAGE)}, output_features=out,
            noise_scheduler_type="DDIM", num_inference_steps=10,
        )  # fmt: skip
    params = count_parameters(policy.model) if name == "tdmpc" else count_parameters(policy)
    policy.to(device).train()
    opt = torch.optim.AdamW(policy.get_optim_params(), lr=1e-4, weight_decay=1e-4, fused=True)
    after = policy.update_target if name == "tdmpc" else None
    step = train_step_fn(policy, opt, train, after, precision, device)

    def train_once() -> None:
        policy.train()
        step()

    def infer_with(net: Any) -> None:
        net.eval()
        net.reset()
        with autocast(precision, device):
            infer_call(net)

    def infer_call(net: Any) -> None:
        if name == "diffusion":
            stacked = {k: torch.stack([v, v], dim=1) for k, v in obs.items()}
            net.predict_action_chunk(stacked)
        elif name == "act":
            net.predict_action_chunk(obs)
        else:
            net.select_action(obs)

    # The same weights in int8 (`agents.int8`, `twinarm eval --int8`); the backbone's activation ranges are
    # calibrated on frames drawn like the benchmark's own (uniform noise images).
    infer = functools.partial(infer_with, policy)

    def floor() -> dict[str, Any]:
        # Counted after the timed rounds, while the LeRobot worker waits: nothing else loads the cores.
        from float32_floor import count_flops, matmul_peak

        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        return {"flops": count_flops(infer).total, "peak_flops": matmul_peak(dtype), "precision": precision}

    if device != "cpu":  # the floor and int8 (fbgemm/oneDNN kernels) are the CPU's
        return params, train_once, infer, None, None
    if precision != "float32":  # int8 belongs to the float32 comparison
        return params, train_once, infer, None, floor
    quantized = copy.deepcopy(policy).eval()
    g = torch.Generator().manual_seed(1)
    calibration = [{k: (torch.rand_like(v) if v.dim() == 4 else torch.randn(v.shape, generator=g)) for k, v in obs.items()}
                   for _ in range(8)] if name == "act" else []  # fmt: skip
    enable_int8(quantized, calibration)
    return params, train_once, infer, functools.partial(infer_with, quantized), floor


# ----- LeRobot worker ------------------------------------------------------------------------------------
def lerobot_setup(
    name: str, precision: str = "float32", device: str = "cpu"
) -> tuple[int, Callable[[], None], Callable[[], None]]:
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature

    device_setup(device)
    torch.manual_seed(0)
    train, obs = (on_device(b, device) for b in batches(name))
    state = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))}
    out = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    with_camera = {**state, "observation.images.top": PolicyFeature(type=FeatureType.VISUAL, shape=IMAGE)}
    if name == "act":
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy

        cfg = ACTConfig(
            input_features=with_camera,
            output_features=out,
            pretrained_backbone_weights=None,
            device=device,
        )
        policy = ACTPolicy(cfg)
    elif name == "diffusion":
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

        cfg = DiffusionConfig(
            input_features=with_camera,
            output_features=out,
            pretrained_backbone_weights=None,
            device=device,
            use_group_norm=True,
            noise_scheduler_type="DDIM",
            num_inference_steps=10,
        )
        policy = DiffusionPolicy(cfg)
    else:
        from lerobot.policies.tdmpc.configuration_tdmpc import TDMPCConfig
        from lerobot.policies.tdmpc.modeling_tdmpc import TDMPCPolicy

        cfg = TDMPCConfig(
            input_features={
                **state,
                "observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=TDMPC_IMAGE),
            },
            output_features=out,
            device=device,
        )
        policy = TDMPCPolicy(cfg)
    model = policy.model if name == "tdmpc" else policy
    params = sum(p.numel() for p in model.parameters())
    policy.to(device).train()
    opt = torch.optim.AdamW(policy.get_optim_params(), lr=1e-4, weight_decay=1e-4)
    after = policy.update if name == "tdmpc" else None
    step = train_step_fn(policy, opt, dict(train), after, precision, device)

    def train_once() -> None:
        policy.train()
        step()

    def infer() -> None:
        policy.eval()
        policy.reset()
        with torch.no_grad(), autocast(precision, device):  # lerobot-eval: select_action under autocast with use_amp
            if name == "diffusion":
                stacked = {k: torch.stack([v, v], dim=1) for k, v in obs.items()}
                policy.predict_action_chunk(stacked)
            elif name == "act":
                policy.predict_action_chunk(dict(obs))
            else:
                policy.select_action(dict(obs))

    return params, train_once, infer


def serve(setup: Callable[[str, str, str], tuple[Any, ...]], name: str, precision: str, device: str = "cpu") -> None:
    """Worker loop: build the policy, then answer `train N` / `infer N` (/ `infer8 N`: twinarm in int8) lines
    with the mean time of N back-to-back calls (on a GPU, until its queued work has finished), and `floor`
    (twinarm) with the float32 (or bf16) floor's figures."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    params, *fns_in = setup(name, precision, device)
    fns = {k: f for k, f in zip(("train", "infer", "infer8", "floor"), fns_in, strict=False) if f is not None}
    print(json.dumps({"params": params, "commands": list(fns)}), flush=True)
    for line in sys.stdin:
        cmd, _, count = line.strip().partition(" ")
        if cmd == "quit":
            break
        calls = int(count or 1)
        sync()
        t = time.perf_counter()
        for _ in range(calls):
            answer = fns[cmd]()
        sync()
        print(json.dumps({cmd: (time.perf_counter() - t) / calls if answer is None else answer}), flush=True)


# ----- driver ----------------------------------------------------------------------------------------------
class Worker:
    """One side's worker process, kept alive so the two sides can be timed turn by turn."""

    def __init__(
        self, python: str, side: str, name: str, extra_env: dict[str, str] | None = None, precision: str = "float32",
        script: Path | None = None, device: str = "cpu",
    ) -> None:
        """`script` (default: this one) is run with `--worker side --policy name --precision precision` (and
        `--device device` off the CPU)."""
        # The caller's PYTHONPATH first: where twinarm is installed (not editable) beside this checkout, its
        # top-level `twinarm/` folder must not shadow the installed package.
        path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "PYTHONPATH": path, **(extra_env or {})}
        script = script or Path(__file__).resolve()
        cmd = [python, str(script), "--worker", side, "--policy", name, "--precision", precision]
        cmd += ["--device", device] if device != "cpu" else []
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            last = err.strip().splitlines()[-1] if err.strip() else f"exit {self.proc.poll()}"
            return {"error": last}
        return json.loads(line)

    def run(self, cmd: str, calls: int = 1) -> float | None:
        """Mean seconds per call over `calls` back-to-back timed calls of `cmd` (None once the worker failed)."""
        answer = self.ask(cmd, f"{cmd} {calls}")
        return None if answer is None else float(answer)

    def ask(self, cmd: str, line: str | None = None) -> Any:
        if "error" in self.info or self.proc.stdin is None:
            return None
        self.proc.stdin.write((line or cmd) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        if "error" in out:
            self.info = out
            return None
        return out[cmd]

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def compare(
    name: str, sides: dict[str, str], repeats: int, warmup: int = 2, lerobot_malloc: bool = False,
    precision: str = "float32", device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Time both sides turn by turn (train, then inference), so changing load hits them alike."""
    from twinarm.agents.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD

    same_malloc = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
    workers = {
        side: Worker(
            python, side, name, same_malloc if side == "lerobot" and lerobot_malloc else None, precision, device=device
        )
        for side, python in sides.items()
    }
    times: dict[str, dict[str, list[float]]] = {side: {"train": [], "infer": []} for side in workers}
    if "infer8" in workers["twinarm"].info.get("commands", ()):
        times["twinarm"]["infer8"] = []
    per_turn: dict[str, int] = {}
    floor = None
    try:
        for kind in ("train", "infer"):
            n = repeats if kind == "train" else max(3, repeats)
            turns = [(side, kind) for side in workers]
            if kind == "infer" and "infer8" in workers["twinarm"].info.get("commands", ()):
                turns.append(("twinarm", "infer8"))
            calls = 1
            for i in range(warmup + n):
                last = {}
                for side, cmd in turns:
                    t = workers[side].run(cmd, calls)
                    last[side, cmd] = t
                    if t is not None and i >= warmup:
                        times[side][cmd].append(t)
                if i == warmup - 1:
                    # Fast calls are timed in bursts: each turn lasts >= MIN_TURN_S on the slowest side, the
                    # same number of calls on both sides, so one short stall weighs no more than in a slow call.
                    slowest = max((t for t in last.values() if t is not None), default=MIN_TURN_S)
                    calls = max(1, min(MAX_CALLS_PER_TURN, math.ceil(MIN_TURN_S / slowest)))
                    per_turn[kind] = calls
        floor = workers["twinarm"].ask("floor") if "floor" in workers["twinarm"].info.get("commands", ()) else None
    finally:
        for w in workers.values():
            w.close()
    out: dict[str, dict[str, Any]] = {}
    for side, w in workers.items():
        if "error" in w.info:
            out[side] = {"error": w.info["error"]}
            continue
        out[side] = {"params": w.info["params"]}
        for kind, ts in times[side].items():
            if not ts:
                continue
            out[side][kind] = {"min_s": min(ts), "median_s": statistics.median(ts), "all_s": ts}
    if floor is not None and "error" not in out["twinarm"]:
        out["twinarm"]["floor"] = floor
    if "error" not in out["twinarm"]:
        out["twinarm"]["calls_per_turn"] = per_turn
    return out


def fmt_s(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over rounds of twinarm's time / LeRobot's time in the same round (the two runs back to back):
    steadier than the ratio of minima when the load drifts during a run."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    head = (
        "policy",
        "params twinarm",
        "params LeRobot",
        "train twinarm",
        "train LeRobot",
        "ratio (<=0.8)",
        "paired",
        "infer twinarm",
        "infer LeRobot",
        "ratio (<=0.5)",
        "paired",
    )
    int8 = any("infer8" in sides["twinarm"] for sides in results.values())
    if int8:
        head += ("infer int8", "ratio int8", "paired int8")
    rows = [head]
    for name, sides in results.items():
        t, lr = sides["twinarm"], sides.get("lerobot", {})
        if "error" in t:
            rows.append((name, "error: " + t["error"], *[""] * (len(head) - 2)))
            continue
        have = bool(lr) and "error" not in lr
        ratio = {k: f"{t[k]['min_s'] / lr[k]['min_s']:.2f}x" if have else "n/a" for k in ("train", "infer")}
        paired = {k: f"{paired_ratio(t[k]['all_s'], lr[k]['all_s']):.2f}x" if have else "n/a" for k in ("train", "infer")}
        infer_label = (
            "plan step" if name == "tdmpc" else ("chunk, DDIM 10" if name == "diffusion" else "chunk")
        )
        rows.append((
            name, f"{t['params'] / 1e6:.2f}M", f"{lr['params'] / 1e6:.2f}M" if have else lr.get("error", "n/a")[:40],
            f"{fmt_s(t['train']['min_s'])} (med {fmt_s(t['train']['median_s'])})",
            f"{fmt_s(lr['train']['min_s'])} (med {fmt_s(lr['train']['median_s'])})" if have else "n/a", ratio["train"], paired["train"],
            f"{fmt_s(t['infer']['min_s'])} {infer_label}", f"{fmt_s(lr['infer']['min_s'])}" if have else "n/a", ratio["infer"],
            paired["infer"],
        ))  # fmt: skip
        if int8:
            rows[-1] += (
                fmt_s(t["infer8"]["min_s"]),
                f"{t['infer8']['min_s'] / lr['infer']['min_s']:.2f}x" if have else "n/a",
                f"{paired_ratio(t['infer8']['all_s'], lr['infer']['all_s']):.2f}x" if have else "n/a",
            )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + turn_lines(results) + floor_lines(results))


def turn_lines(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """How many back-to-back calls each timed turn averaged, per policy (1 when a call alone lasts a turn)."""
    parts = [
        f"{name}: {turns.get('train', 1)} training step(s), {turns.get('infer', 1)} inference(s)"
        for name, sides in results.items()
        if (turns := sides["twinarm"].get("calls_per_turn"))
    ]
    return ["", "calls per timed turn (each time is their mean): " + "; ".join(parts)] if parts else []


def floor_lines(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Per policy: twinarm's float32 (or bf16) inference floor on this CPU (`float32_floor`) against the 0.5x
    target."""
    lines = []
    for name, sides in results.items():
        floor, lr = sides["twinarm"].get("floor"), sides.get("lerobot", {})
        if not floor:
            continue
        least = floor["flops"] / floor["peak_flops"]
        kind = floor.get("precision", "float32")
        line = (
            f"{name} {kind} floor: {floor['flops'] / 1e9:.1f} GFLOP of matmuls and convolutions per inference at "
            f"this CPU's best {kind} matmul rate ({floor['peak_flops'] / 1e9:.0f} GFLOP/s) = {fmt_s(least)}"
        )
        if "infer" in lr:
            target = 0.5 * lr["infer"]["min_s"]
            verdict = (f"above it: no {kind} code doing these FLOPs reaches the target here (fast-convolution "
                       "algorithms do fewer: policy_speed.md, 'Measured and not kept')") if least > target else "below it"
            line += f"; the 0.5x target is {fmt_s(target)}, the floor is {verdict}"
        lines.append(line)
    return ["", *lines] if lines else []


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=("twinarm", "lerobot"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--policy", choices=POLICIES, default=None, help="one policy (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement")
    p.add_argument(
        "--lerobot-python", type=Path, default=DEFAULT_LEROBOT, help="python of a venv with lerobot"
    )
    p.add_argument("--out", type=Path, default=None,
                   help=f"where to save the table (default: {RESULTS.relative_to(ROOT)}, or "
                   f"{RESULTS_BF16.relative_to(ROOT)} with --precision bf16)")
    p.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="bf16: both sides under torch's CPU bf16 autocast (twinarm's --precision bf16, LeRobot's "
                   "use_amp), forward passes in training and whole inference calls; no int8 column then, and the "
                   "floor at the bf16 matmul rate")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: both sides on the GPU (TF32 and cuDNN's autotuner on, as both training commands set "
                   f"them; times wait for the GPU's queued work), no int8 column or floor; default file "
                   f"{RESULTS_CUDA.relative_to(ROOT)} (_bf16 before .txt with --precision bf16)")
    p.add_argument(
        "--lerobot-malloc",
        action="store_true",
        help="give LeRobot's worker twinarm's malloc thresholds too (default: LeRobot as it ships)",
    )
    a = p.parse_args()
    if a.worker:
        serve(twinarm_setup if a.worker == "twinarm" else lerobot_setup, a.policy, a.precision, a.device)
        return
    out = a.out or (RESULTS_CUDA if a.device == "cuda" else RESULTS)
    if a.precision == "bf16" and a.out is None:
        out = out.with_name(out.stem + "_bf16.txt")
    sides = {"twinarm": sys.executable}
    if a.lerobot_python.exists():
        sides["lerobot"] = str(a.lerobot_python)
    have_lerobot = "lerobot" in sides
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in [a.policy] if a.policy else list(POLICIES):
        results[name] = compare(
            name, sides, a.repeats, lerobot_malloc=a.lerobot_malloc, precision=a.precision, device=a.device
        )
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    text = table(results)
    load_after = os.getloadavg()
    header = (
        f"# {started}, load average {load_before[0]:.2f} before / {load_after[0]:.2f} after "
        f"(1-min, {os.cpu_count()} cores, {cpu_label()}); policy speed, {device_label(a.device)}, {THREADS} torch threads, "
        f"{'bf16 autocast on both sides' if a.precision == 'bf16' else 'float32'}, batch {BATCH} for "
        f"training, batch 1 for inference; LeRobot from {a.lerobot_python if have_lerobot else 'not installed'}"
        f"{'; LeRobot with the same malloc thresholds (--lerobot-malloc)' if a.lerobot_malloc else ''}\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    earlier = out.read_text() if out.exists() else ""
    out.write_text(header + text + "\n" + ("\n" + earlier if earlier else ""))
    print(header + text)


def device_label(device: str) -> str:
    """'CPU', or the GPU's name with TF32 noted (both sides run with it on)."""
    if device == "cpu":
        return "CPU"
    import torch

    return f"GPU: {torch.cuda.get_device_name()} (TF32 matmuls and convolutions, cuDNN autotuner, on both sides)"


def cpu_label() -> str:
    """The CPU as it bears on these timings: model, torch's kernel level, and int8 dot-product support (VNNI)."""
    import torch

    flags, model = set(), "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    vnni = "VNNI" if flags & {"avx512_vnni", "avx_vnni"} else "no VNNI"
    return f"{model} ({torch.backends.cpu.get_cpu_capability()} kernels, {vnni})"


if __name__ == "__main__":
    main()
