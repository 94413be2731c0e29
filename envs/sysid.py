"""System identification: fit an arm's servo and joint parameters (`envs.dynamics`) to recorded joint
trajectories, so the sim arm follows commands the way the real one did.

Each recorded episode is replayed open loop on the bare arm (its scene without task objects), from its first
recorded pose, with its recorded actions; the residual is the simulated minus the recorded joint positions
after every action. MuJoCo's own tools do the work: `mujoco.rollout` runs the rollouts of many parameter sets
on one thread per core, `mujoco.minimize.least_squares` fits them (bounded Gauss-Newton with finite
differences), with a weak pull towards the starting values so parameters the data cannot tell apart stay put.
On request the recording's real control rate is fitted too (a loop that overran ran slower than its fps).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
from mujoco import minimize, rollout

from twinarm.envs.dynamics import (
    DEFAULT_FIT,
    PARAMS,
    ArmDynamics,
    JointAddresses,
    apply_dynamics,
    read_dynamics,
)
from twinarm.envs.physics import ArmPhysics
from twinarm.spec import ArmSpec

#: Values a parameter is scaled by when the start value is 0 (so the fit still has a unit to move in).
REFERENCE = {"kp": 10.0, "damping": 0.1, "armature": 0.01, "frictionloss": 0.01, "max_torque": 1.0, "mass": 0.1}
#: Bounds of each parameter as multiples of its start (or reference) value.
BOUNDS = {"kp": (0.05, 20.0), "damping": (0.0, 50.0), "armature": (0.0, 50.0), "frictionloss": (0.0, 50.0),
          "max_torque": (0.05, 20.0), "mass": (0.1, 10.0)}
#: Parameters fitted in a second stage, from the servo fit's result (they trade off against the gains).
LATE = ("mass",)
#: Bounds of the recording's real control period as a multiple of the nominal one (`fit_rate`).
PERIOD_BOUNDS = (0.5, 2.0)
#: Rollout states held at once (floats), so long recordings are rolled out in slices of the batch.
STATE_BUDGET = 8_000_000


#: A gripper holds something where it stands still (moves less than HOLD_STILL a frame) while its command is more
#: closed than its position by over HOLD_GAP (spec units: opening 0..1), HOLD_FRAMES frames in a row (a gripper
#: that has just been told to close also stands still a frame or two); it has let go once it stands still within
#: SETTLED of its command again, as many frames in a row. HOLD_LEAD frames on either side go too: the approach
#: to contact, where the bare sim arm's gripper kept closing, and the bare gripper's longer way back open.
HOLD_GAP, HOLD_STILL, HOLD_FRAMES, SETTLED, HOLD_LEAD = 0.05, 0.005, 4, 0.02, 3


@dataclass(frozen=True)
class Trajectory:
    """One recorded episode in spec units: `states[t]` was read before `actions[t]` was sent. `compare` (T-1, dof),
    when given, says which of frames 1..T-1 each joint is compared on (None: all)."""

    states: np.ndarray
    actions: np.ndarray
    compare: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.states.ndim != 2 or self.states.shape != self.actions.shape or len(self.states) < 2:
            raise ValueError(f"a trajectory needs matching (T >= 2, dof) states and actions, got "
                             f"{self.states.shape} and {self.actions.shape}")  # fmt: skip
        if self.compare is not None and self.compare.shape != (len(self.states) - 1, self.states.shape[1]):
            raise ValueError(f"compare must be (T-1, dof) = {(len(self.states) - 1, self.states.shape[1])}, "
                             f"got {self.compare.shape}")  # fmt: skip

    def weights(self) -> np.ndarray:
        """1.0 for each compared (frame, joint) of frames 1..T-1, 0.0 for the rest."""
        return np.ones(self.states[1:].shape) if self.compare is None else self.compare.astype(float)


def without_grasps(traj: Trajectory, gripper_cols: Sequence[int]) -> Trajectory:
    """`traj` with the frames where a gripper held an object left out of its comparison: the bare sim arm has no
    object to close on, so there its gripper closes all the way while the recorded one stood at the object."""
    s, a = traj.states, traj.actions
    keep = np.ones(s[1:].shape, bool) if traj.compare is None else traj.compare.copy()
    for c in gripper_cols:
        held, tail, run, rest = False, 0, 0, 0
        for t in range(1, len(s)):  # frame t is compared in row t - 1
            still = abs(s[t, c] - s[t - 1, c]) < HOLD_STILL
            blocked = still and a[t - 1, c] < s[t, c] - HOLD_GAP
            run = run + 1 if blocked else 0
            rest = rest + 1 if still and abs(s[t, c] - a[t - 1, c]) < SETTLED else 0
            if run >= HOLD_FRAMES and not held:
                held = True
                keep[max(0, t - run - HOLD_LEAD) : t - 1, c] = False  # from the lead before the first still frame
            elif held and rest >= HOLD_FRAMES:  # at rest at its command (not a command ramping past it)
                held, tail = False, HOLD_LEAD
            if held or tail:
                keep[t - 1, c] = False
                if not held:
                    tail -= 1
    return Trajectory(traj.states, traj.actions, keep)


@dataclass(frozen=True)
class FitResult:
    """The fitted parameters (every joint: fitted ones changed, the rest as started) and latency, the start,
    each joint's RMS error (spec units) of the open-loop replays before and after, and for each latency tried
    the RMS over the compared joints after its fit."""

    dynamics: ArmDynamics
    start: ArmDynamics
    rms_before: np.ndarray
    rms_after: np.ndarray
    iterations: int
    fitted: tuple[tuple[str, str], ...]
    by_delay: dict[int, float]
    #: The recording's real control period over the nominal one (1.0 unless `fit_rate`; 1.1: the loop ran 10 %
    #: slower than its fps says, as a loop that overruns does).
    period_scale: float = 1.0
    #: For each fitted gripper: (frames left out where it held an object, frames in all).
    left_out: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)


class Replayer:
    """Open-loop replays of recorded trajectories on the bare arm, for many parameter sets per call."""

    def __init__(self, spec: ArmSpec, trajectories: Sequence[Trajectory], start: ArmDynamics | None = None,
                 delay: int | None = None, nthread: int | None = None, period_scale: float = 1.0) -> None:  # fmt: skip
        if not trajectories:
            raise ValueError("no trajectories to replay")
        self.spec = spec
        self.physics = ArmPhysics.from_arm(spec)
        self.model = self.physics.model
        #: The nominal physics timestep; `period_scale` stretches it, and so each action's hold, to a loop
        #: that really ran at control_hz / period_scale.
        self.timestep = float(self.model.opt.timestep)
        self.model.opt.timestep = self.timestep * period_scale
        if start is not None:
            apply_dynamics(self.model, spec, start)
        #: Control steps between sending an action and its taking effect (the start's, unless given); until the
        #: first one does, the arm holds the recorded first pose, as an env reset there leaves its targets.
        self.delay = int(delay if delay is not None else start.action_delay_steps if start is not None else 0)
        self.where = JointAddresses.of(self.model, spec)
        self.trajectories = list(trajectories)
        n = self.physics.n_substeps
        self.lengths = [len(t.states) for t in self.trajectories]
        longest = max(self.lengths)
        self.nstep = (longest - 1) * n  # the last action's outcome was never recorded
        nu, nstate = self.model.nu, mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        self.initial = np.empty((len(self.trajectories), nstate))
        self.control = np.zeros((len(self.trajectories), self.nstep, nu))
        data = self.physics.data
        for i, traj in enumerate(self.trajectories):
            if traj.states.shape[1] != spec.dof:
                raise ValueError(f"trajectory {i} has {traj.states.shape[1]} joints; {spec.name} has {spec.dof}")
            self.physics.reset(traj.states[0])
            mujoco.mj_getState(self.model, data, self.initial[i], mujoco.mjtState.mjSTATE_FULLPHYSICS)
            sent = np.concatenate([np.repeat(traj.states[:1], self.delay, axis=0), traj.actions[:-1]])[: len(traj.actions) - 1]
            targets = self.physics.spec_to_qpos(np.clip(sent, spec.lower, spec.upper))
            held = np.repeat(targets, n, axis=0)  # each action held for the control period's substeps
            self.control[i, : len(held)][:, self.physics.actuator_ids] = held
            self.control[i, len(held) :] = self.control[i, len(held) - 1]
        self.qpos_index = 1 + self.physics.qpos_adr  # FULLPHYSICS: time, qpos, qvel
        self.nthread = nthread or min(os.cpu_count() or 1, 8)
        self.datas = [mujoco.MjData(self.model) for _ in range(self.nthread)]
        self._models: list[mujoco.MjModel] = []

    def models(self, k: int) -> list[mujoco.MjModel]:
        """k independent copies of the model (reused from call to call)."""
        while len(self._models) < k:
            self._models.append(copy.deepcopy(self.model))
        return self._models[:k]

    def replay(self, models: Sequence[mujoco.MjModel]) -> list[list[np.ndarray]]:
        """For each model, each trajectory's simulated states (spec units) at the recorded frames 1..T-1."""
        n, n_traj = self.physics.n_substeps, len(self.trajectories)
        pairs = [(m, t) for m in range(len(models)) for t in range(n_traj)]
        rows = max(1, STATE_BUDGET // (self.nstep * self.initial.shape[1]))
        qpos = np.empty((len(pairs), self.nstep // n, len(self.qpos_index)))
        for lo in range(0, len(pairs), rows):
            chunk = pairs[lo : lo + rows]
            state, _ = rollout.rollout(
                [models[m] for m, _ in chunk], self.datas[: min(self.nthread, len(chunk))],
                self.initial[[t for _, t in chunk]], self.control[[t for _, t in chunk]],
            )  # fmt: skip
            qpos[lo : lo + len(chunk)] = state[:, n - 1 :: n][:, :, self.qpos_index]
        out: list[list[np.ndarray]] = [[] for _ in models]
        for (m, t), q in zip(pairs, qpos, strict=True):
            out[m].append(self.physics.qpos_to_spec(q[: self.lengths[t] - 1]))
        return out


    def replay_one(self) -> np.ndarray:
        """The first trajectory's simulated states (frames 1..T-1) on this replayer's own model."""
        return self.replay([self.model])[0][0]


def at_bounds(result: FitResult, tolerance: float = 0.01) -> list[tuple[str, str, str]]:
    """The fitted (joint, param) that ended at a bound of the fit, with which ("lower"/"upper"): values the
    recordings did not pin down (a link gravity does not load, a friction no move reveals)."""
    out = []
    for j, p in result.fitted:
        ref = result.start.joints[j][p] or REFERENCE[p]
        x = result.dynamics.joints[j][p] / ref
        lo, hi = BOUNDS[p]
        if x <= lo + tolerance * max(1.0, lo):
            out.append((j, p, "lower"))
        elif x >= hi * (1 - tolerance):
            out.append((j, p, "upper"))
    return out


def rms_per_joint(trajectories: Sequence[Trajectory], simulated: Sequence[np.ndarray]) -> np.ndarray:
    """Each joint's RMS of simulated minus recorded states over its compared frames (of 1..T-1), pooled over
    trajectories."""
    diff = np.concatenate([s - t.states[1:] for t, s in zip(trajectories, simulated, strict=True)])
    w = np.concatenate([t.weights() for t in trajectories])
    return np.sqrt(np.sum(w * diff**2, axis=0) / np.maximum(w.sum(axis=0), 1))


def fit_dynamics(
    spec: ArmSpec,
    trajectories: Sequence[Trajectory],
    joints: Sequence[str] | None = None,
    params: Sequence[str] = DEFAULT_FIT,
    start: ArmDynamics | None = None,
    delays: Sequence[int] | None = None,
    max_iter: int = 30,
    prior: float = 1e-5,
    progress: Callable[[int, int, float], None] | None = None,
    fit_rate: bool = False,
    mask_grasps: bool = True,
) -> FitResult:
    """Fit `params` of `joints` (default: every joint but the grippers, whose recordings often close on an
    object the bare arm lacks) to the trajectories, once per command latency in `delays` (control steps;
    default: the start's), and keep the best. The residual compares the same joints, in the model's joint
    units (rad); `prior` weighs each parameter's change relative to its start. `fit_rate` also fits the
    recording's real control period (one scale for all episodes), so a loop that ran slower than its fps does
    not bend the servo parameters. A fitted gripper is compared only where it held nothing (`without_grasps`;
    `mask_grasps=False` compares every frame). `progress(delay, iteration, rms)` is called after each
    iteration."""
    joints = list(joints) if joints is not None else [n for n, g in zip(spec.joint_names, spec.gripper_mask, strict=True) if not g]
    unknown = sorted(set(joints) - set(spec.joint_names)) + sorted(set(params) - set(PARAMS))
    if unknown:
        raise ValueError(f"unknown joints or parameters {unknown}: joints {list(spec.joint_names)}, parameters {list(PARAMS)}")
    if not joints or not params:
        raise ValueError("nothing to fit: give at least one joint and one parameter")
    delays = list(delays) if delays is not None else [start.action_delay_steps if start is not None else 0]
    if not delays or min(delays) < 0:
        raise ValueError(f"delays must be control-step counts >= 0, got {delays}")
    idx = [spec.joint_names.index(j) for j in joints]
    grippers = [j for j in idx if spec.gripper_mask[j]]
    if mask_grasps and grippers:
        trajectories = [without_grasps(t, grippers) for t in trajectories]
    entries = tuple((j, p) for j in joints for p in params)
    best: tuple[int, ArmDynamics, int, float] | None = None
    by_delay: dict[int, float] = {}
    before = Replayer(spec, trajectories, start)  # the model as it starts, at the start's latency
    base = ArmDynamics(spec.name, read_dynamics(before.model, spec).joints, before.delay)
    unlimited = [j for j, p in entries if p not in base.joints[j]]
    if unlimited:
        raise ValueError(f"max_torque: the servos of {unlimited} have no torque limit in the model to fit")
    rms_before = rms_after = rms_per_joint(before.trajectories, before.replay([before.model])[0])
    for delay in delays:
        sim = Replayer(spec, trajectories, start, delay)
        report = None if progress is None else functools.partial(progress, delay)
        fitted, iterations, period = _fit_at_delay(sim, base, idx, entries, max_iter, prior, report, fit_rate)
        after = copy.deepcopy(sim.model)
        apply_dynamics(after, spec, fitted)
        after.opt.timestep = sim.timestep * period
        rms = rms_per_joint(sim.trajectories, sim.replay([after])[0])
        by_delay[delay] = float(np.sqrt(np.mean(rms[idx] ** 2)))
        if best is None or by_delay[delay] < by_delay[best[2]]:
            best = (iterations, ArmDynamics(spec.name, fitted.joints, delay), delay, period)
            rms_after = rms
    assert best is not None
    compared = np.sum([t.weights().sum(axis=0) for t in trajectories], axis=0)
    total = sum(len(t.states) - 1 for t in trajectories)
    left_out = {spec.joint_names[j]: (int(total - compared[j]), total) for j in grippers}
    return FitResult(best[1], base, rms_before, rms_after, best[0], entries, by_delay, best[3], left_out)


def _fit_at_delay(
    sim: Replayer, base: ArmDynamics, idx: list[int], entries: tuple[tuple[str, str], ...], max_iter: int,
    prior: float, progress: Callable[[int, float], None] | None, fit_rate: bool = False,
) -> tuple[ArmDynamics, int, float]:  # fmt: skip
    """A least-squares fit of `entries` on `sim`'s replays (its latency), from `base`'s values. The servo's
    parameters are fitted first; the links' masses (LATE) and, with `fit_rate`, the control period's scale join
    in a second fit from the first one's result, so they can only improve on it (started together with the
    gains they can trade off against, they settled worse than the servo fit alone on a virtual-arm recording).
    Returns the fit, its iterations and the period's scale."""
    names = sim.spec.joint_names
    unknowns = [e for e in entries if e[1] not in LATE] + [e for e in entries if e[1] in LATE]
    early, n = sum(p not in LATE for _, p in entries), len(unknowns)
    total = n + fit_rate  # the last unknown, with fit_rate: the period's scale
    ref = np.array([base.joints[j][p] or REFERENCE[p] for j, p in unknowns] + [1.0])
    x0 = np.array([base.joints[j][p] for j, p in unknowns] + [1.0]) / ref
    lower = np.array([BOUNDS[p][0] for _, p in unknowns] + [PERIOD_BOUNDS[0]])
    upper = np.array([BOUNDS[p][1] for _, p in unknowns] + [PERIOD_BOUNDS[1]])
    scale = sim.physics.qpos_scale[idx]  # spec units back to the joints' own (grippers: the jaw's radians)
    weights = [t.weights()[:, idx] for t in sim.trajectories]
    count = max(1.0, float(sum(w.sum() for w in weights)))

    def residual(x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x.T).T  # (unknowns solved for, k): the solver asks for k points at once
        models = sim.models(x.shape[1])
        for col, m in enumerate(models):
            v = np.concatenate([x[:, col], x0[len(x) :]])  # those not solved for yet at their start
            for e, (j, p) in enumerate(unknowns):
                sim.where.set(m, names.index(j), p, v[e] * ref[e])
            m.opt.timestep = sim.timestep * (v[n] if fit_rate else 1.0)
            mujoco.mj_setConst(m, sim.datas[0])
        out = []
        for col, states in enumerate(sim.replay(models)):
            err = np.concatenate([((s - t.states[1:])[:, idx] * scale * w).ravel()
                                  for t, s, w in zip(sim.trajectories, states, weights, strict=True)])  # fmt: skip
            out.append(np.concatenate([err / np.sqrt(count), prior * (x[:, col] - x0[: len(x)])]))
        return np.stack(out, axis=1)

    done = 0

    def on_iteration(trace: list) -> None:
        if progress is not None:
            progress(done + len(trace), float(np.sqrt(2 * trace[-1].objective)))

    def solve(start: np.ndarray) -> np.ndarray:
        nonlocal done
        m = len(start)
        x, trace = minimize.least_squares(
            start, residual, bounds=(lower[:m], upper[:m]), max_iter=max_iter, eps=1e-6, x_scale="jac",
            verbose=minimize.Verbosity.SILENT, iter_callback=on_iteration,
        )  # fmt: skip
        done += len(trace)
        return x

    x = solve(x0[:early]) if early else x0[:0]
    if total > early:
        x = solve(np.concatenate([x, x0[early:total]]))
    joints = {name: dict(v) for name, v in base.joints.items()}
    for e, (j, p) in enumerate(unknowns):
        joints[j][p] = float(x[e] * ref[e])
    return ArmDynamics(base.arm, joints, sim.delay), done, float(x[n]) if fit_rate else 1.0
