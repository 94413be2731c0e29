"""System identification (`envs.sysid`): open-loop replays that match the env step for step, and fits that find
known parameters and latency again from trajectories simulated with them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.arms import get_arm
from twinarm.envs.dynamics import PARAMS, ArmDynamics, read_dynamics
from twinarm.envs.experts import expert_prefix
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.sysid import Replayer, Trajectory, fit_dynamics, rms_per_joint, without_grasps

SO101 = get_arm("so101")
NOMINAL = read_dynamics(ArmPhysics.from_arm(SO101).model, SO101)
#: A "real" arm: softer, more damped servos, heavier rotors, more friction, one control step of latency.
TRUTH = ArmDynamics(
    "so101",
    {n: {p: v[p] * {"kp": 0.7, "damping": 1.8, "armature": 1.5, "frictionloss": 2.5}.get(p, 1.0) for p in PARAMS}
     for n, v in NOMINAL.joints.items()},
    action_delay_steps=1,
)  # fmt: skip


def expert_trajectories(seeds: range, steps: int, dynamics: ArmDynamics | None = TRUTH,
                        env_id: str = "twinarm/SO101-Reach-v0") -> list[Trajectory]:  # fmt: skip
    """Scripted episodes (Reach: no object to touch) on an env with `dynamics`, as a recorder would keep them."""
    env = gym.make(env_id, obs_type="state", dynamics=dynamics)
    out = []
    for seed in seeds:
        qs, actions = expert_prefix(env, seed, steps)  # the state each action was chosen in: all but the last
        out.append(Trajectory(qs[:-1].astype(np.float64), actions.astype(np.float64)))
    return out


@pytest.fixture(scope="module")
def recorded() -> list[Trajectory]:
    return expert_trajectories(range(2), 60)


def test_replays_match_the_env_step_for_step(recorded: list[Trajectory]) -> None:
    """The same parameters and latency reproduce the env's states (to the float32 the env reports)."""
    sim = Replayer(SO101, recorded, TRUTH)
    assert sim.delay == 1
    for traj, states in zip(recorded, sim.replay([sim.model])[0], strict=True):
        assert np.abs(states - traj.states[1:]).max() < 1e-6
    # Without the latency, or with the model's own parameters, they do not.
    for other in (Replayer(SO101, recorded, TRUTH, delay=0), Replayer(SO101, recorded)):
        assert rms_per_joint(recorded, other.replay([other.model])[0])[:5].max() > 1e-3


def test_fit_finds_gains_damping_and_latency_again(recorded: list[Trajectory]) -> None:
    """Gravity-loaded joints pin each parameter down: kp and damping come back within 2 %, the latency exactly,
    and the fitted arm follows an episode it was not fitted to as the "real" one did."""
    joints = ["shoulder_lift", "elbow_flex"]
    seen: list[tuple[int, int, float]] = []
    start = ArmDynamics("so101", {n: {**v, "armature": TRUTH.joints[n]["armature"], "frictionloss": TRUTH.joints[n]["frictionloss"]}
                                  for n, v in NOMINAL.joints.items()})  # fmt: skip
    result = fit_dynamics(SO101, recorded, joints, ("kp", "damping"), start, delays=[0, 1, 2], max_iter=20,
                          progress=lambda d, i, r: seen.append((d, i, r)))  # fmt: skip
    assert result.dynamics.action_delay_steps == 1
    assert min(result.by_delay, key=result.by_delay.get) == 1
    for j in joints:
        for p in ("kp", "damping"):
            assert result.dynamics.joints[j][p] == pytest.approx(TRUTH.joints[j][p], rel=0.02), (j, p)
        assert result.dynamics.joints[j]["armature"] == start.joints[j]["armature"]  # not fitted: as started
    assert result.dynamics.joints["wrist_flex"] == start.joints["wrist_flex"]
    idx = [SO101.joint_names.index(j) for j in joints]
    assert np.all(result.rms_after[idx] < 0.05 * result.rms_before[idx])
    assert {d for d, _, _ in seen} == {0, 1, 2}
    at_one = [r for d, _, r in seen if d == 1]
    assert at_one[-1] < 0.05 * at_one[0]  # the reported RMS falls as the fit goes
    held_out = expert_trajectories(range(5, 6), 60)
    fitted = Replayer(SO101, held_out, result.dynamics)
    nominal = Replayer(SO101, held_out, start)
    after = rms_per_joint(held_out, fitted.replay([fitted.model])[0])[idx]
    before = rms_per_joint(held_out, nominal.replay([nominal.model])[0])[idx]
    assert np.all(after < 0.05 * before), (after, before)


def test_a_full_fit_brings_every_arm_joint_close(recorded: list[Trajectory]) -> None:
    """All four parameters of the five arm joints: the replays close to the recording on every joint (a pan or
    wrist roll that gravity does not load fixes only its parameters' ratios, so values are not checked)."""
    result = fit_dynamics(SO101, recorded, delays=[1], max_iter=25)
    arm = ~SO101.gripper_mask
    before, after = (np.sqrt(np.mean(r[arm] ** 2)) for r in (result.rms_before, result.rms_after))
    assert after < 0.05 * before and result.rms_after[arm].max() < 2e-3, (result.rms_after, result.rms_before)
    assert result.dynamics.joints["gripper"] == NOMINAL.joints["gripper"]  # left out by default
    assert {j for j, _ in result.fitted} == set(np.array(SO101.joint_names)[arm])


def test_bad_requests_are_refused(recorded: list[Trajectory]) -> None:
    with pytest.raises(ValueError, match=r"unknown joints or parameters \['elbow'\]"):
        fit_dynamics(SO101, recorded, ["elbow"])
    with pytest.raises(ValueError, match=r"unknown joints or parameters \['stiffness'\]"):
        fit_dynamics(SO101, recorded, params=["stiffness"])
    with pytest.raises(ValueError, match="delays must be"):
        fit_dynamics(SO101, recorded, delays=[-1])
    with pytest.raises(ValueError, match="matching"):
        Trajectory(np.zeros((5, 6)), np.zeros((4, 6)))
    with pytest.raises(ValueError, match="has 5 joints; so101 has 6"):
        Replayer(SO101, [Trajectory(np.zeros((5, 5)), np.zeros((5, 5)))])


@pytest.mark.parametrize(("arm", "env_id"), [("koch", "twinarm/Koch-Reach-v0"), ("so100", "twinarm/SO100-Reach-v0"),
                                             ("aloha", "twinarm/Aloha-TransferCube-v0")])  # fmt: skip
def test_every_arm_fits(arm: str, env_id: str) -> None:
    """Dynamixel and Feetech arms, one arm or two (ALOHA: 14 joints, slide-joint grippers left out): servos 20 %
    softer and a step of latency are found again from one short expert episode."""
    spec = get_arm(arm)
    nominal = read_dynamics(ArmPhysics.from_arm(spec).model, spec)
    truth = ArmDynamics(arm, {n: {**v, "kp": v["kp"] * 0.8} for n, v in nominal.joints.items()}, 1)
    traj = expert_trajectories(range(1), 60, truth, env_id)
    result = fit_dynamics(spec, traj, params=["kp"], delays=[0, 1], max_iter=10)
    assert result.dynamics.action_delay_steps == 1
    for name, grip in zip(spec.joint_names, spec.gripper_mask, strict=True):
        want = nominal.joints[name]["kp"] if grip else truth.joints[name]["kp"]
        assert result.dynamics.joints[name]["kp"] == pytest.approx(want, rel=0.01), name


def test_a_torque_limit_is_found_where_moves_saturate_it() -> None:
    """Servos with 40 % of the model's torque (an SO-101 on a weak supply): the lift and elbow, which the
    PickCube expert's moves drive into the limit, get it back within 2 %; max_torque is fitted only when asked."""
    truth = ArmDynamics("so101", {n: {**v, "max_torque": 0.4 * v["max_torque"]} for n, v in NOMINAL.joints.items()})
    traj = expert_trajectories(range(1), 100, truth, "twinarm/SO101-PickCube-v0")
    joints = ["shoulder_lift", "elbow_flex"]
    result = fit_dynamics(SO101, traj, joints, ["kp", "max_torque"], delays=[0], max_iter=20)
    for j in joints:
        assert result.dynamics.joints[j]["max_torque"] == pytest.approx(truth.joints[j]["max_torque"], rel=0.02), j
    assert ("elbow_flex", "max_torque") not in fit_dynamics(SO101, traj, joints, delays=[0], max_iter=1).fitted


def test_a_loop_that_ran_slow_is_found_and_does_not_bend_the_fit(recorded: list[Trajectory]) -> None:
    """A recording whose loop really ran at 27 Hz while its fps says 30 (what overruns do): fitting the control
    period finds ~27 Hz, the latency and the gains and damping again; without it the fit bends kp and damping to
    soak up the timing."""
    slow = Replayer(SO101, recorded, TRUTH, period_scale=30 / 27)
    assert slow.model.opt.timestep == pytest.approx(Replayer(SO101, recorded).model.opt.timestep * 30 / 27)
    rec = [Trajectory(np.concatenate([t.states[:1], s]), t.actions) for t, s in zip(recorded, slow.replay([slow.model])[0], strict=True)]
    joints = ["shoulder_lift", "elbow_flex"]
    # Every parameter but the fitted ones as the "real" arm's: the unfitted joints' coupling then biases nothing.
    start = ArmDynamics("so101", {n: {**v, **({p: NOMINAL.joints[n][p] for p in ("kp", "damping")} if n in joints else {})}
                                  for n, v in TRUTH.joints.items()})  # fmt: skip
    plain = fit_dynamics(SO101, rec, joints, ("kp", "damping"), start, delays=[0, 1], max_iter=20)
    timed = fit_dynamics(SO101, rec, joints, ("kp", "damping"), start, delays=[0, 1], max_iter=20, fit_rate=True)
    assert plain.period_scale == 1.0
    assert 30 / timed.period_scale == pytest.approx(27, abs=0.05)
    assert timed.dynamics.action_delay_steps == 1
    for j in joints:
        for p in ("kp", "damping"):
            assert timed.dynamics.joints[j][p] == pytest.approx(TRUTH.joints[j][p], rel=0.01), (j, p)
    assert max(abs(plain.dynamics.joints[j][p] / TRUTH.joints[j][p] - 1) for j in joints for p in ("kp", "damping")) > 0.1
    idx = [SO101.joint_names.index(j) for j in joints]
    assert np.all(timed.rms_after[idx] < 0.05 * plain.rms_after[idx]), (timed.rms_after, plain.rms_after)


def test_a_wrist_camera_is_found_as_mass_on_the_wrist_link() -> None:
    """30 g more on the gripper body (a wrist camera): fitting the links' masses finds it within 3 % (also with
    the gains fitted alongside) and leaves the other links at theirs."""
    camera = ArmDynamics("so101", {n: ({**v, "mass": v["mass"] + 0.03} if n == "wrist_roll" else v) for n, v in NOMINAL.joints.items()})
    traj = expert_trajectories(range(2), 90, camera)
    joints = ["shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]
    for params in (["mass"], ["kp", "mass"]):
        result = fit_dynamics(SO101, traj, joints, params, delays=[0], max_iter=30)
        assert result.dynamics.joints["wrist_roll"]["mass"] == pytest.approx(camera.joints["wrist_roll"]["mass"], rel=0.03), params
        for j in joints[:3]:
            assert result.dynamics.joints[j]["mass"] == pytest.approx(NOMINAL.joints[j]["mass"], rel=0.1), (params, j)
        assert np.degrees(result.rms_after[1:5]).max() < 0.01 < np.degrees(result.rms_before[1:3]).min()


def test_values_left_at_a_bound_are_named() -> None:
    """A link mass driven to its lower bound (a pan link gravity does not load) and a damping at zero are what the
    recordings did not pin down; values inside the bounds are not named."""
    from twinarm.envs.sysid import BOUNDS, FitResult, at_bounds

    fitted = {n: dict(v) for n, v in NOMINAL.joints.items()}
    fitted["shoulder_pan"]["mass"] *= BOUNDS["mass"][0]
    fitted["elbow_flex"]["damping"] = 0.0
    fitted["wrist_flex"]["kp"] *= BOUNDS["kp"][1]
    fitted["shoulder_lift"]["kp"] *= 0.7
    entries = (("shoulder_pan", "mass"), ("elbow_flex", "damping"), ("wrist_flex", "kp"), ("shoulder_lift", "kp"))
    rms = np.zeros(SO101.dof)
    result = FitResult(ArmDynamics("so101", fitted), NOMINAL, rms, rms, 1, entries, {0: 0.0})
    assert at_bounds(result) == [("shoulder_pan", "mass", "lower"), ("elbow_flex", "damping", "lower"),
                                 ("wrist_flex", "kp", "upper")]  # fmt: skip


def test_a_gripper_is_fitted_where_it_held_nothing() -> None:
    """PickPlace episodes: the recorded gripper stood at the cube's width while the bare sim arm's closes on
    nothing. Left out while it held the cube (from contact until it rests open again), the gripper's gain and
    damping come back within 1 %; compared on every frame they do not come back at all."""
    traj = expert_trajectories(range(2), 220, TRUTH, "twinarm/SO101-PickPlace-v0")
    g = SO101.joint_names.index("gripper")
    masked = without_grasps(traj[0], [g])
    held = ~masked.compare[:, g]
    assert masked.compare[:, :g].all()  # the arm joints are compared everywhere
    s, a = traj[0].states[:, g], traj[0].actions[:-1, g]
    standing_at_the_cube = (np.abs(np.diff(s)) < 1e-3) & (a < s[1:] - 0.1)
    assert standing_at_the_cube.sum() > 50 and held[standing_at_the_cube].all()
    assert not held[:40].any() and not held[-40:].any()  # the approach before and the retreat after are kept
    start = ArmDynamics("so101", {n: ({**v, "kp": NOMINAL.joints[n]["kp"], "damping": NOMINAL.joints[n]["damping"]}
                                      if n == "gripper" else v) for n, v in TRUTH.joints.items()}, 1)  # fmt: skip
    fits = {mask: fit_dynamics(SO101, traj, ["gripper"], ("kp", "damping"), start, delays=[1], max_iter=30, mask_grasps=mask)
            for mask in (True, False)}  # fmt: skip
    for p in ("kp", "damping"):
        assert fits[True].dynamics.joints["gripper"][p] == pytest.approx(TRUTH.joints["gripper"][p], rel=0.01), p
        assert abs(fits[False].dynamics.joints["gripper"][p] / TRUTH.joints["gripper"][p] - 1) > 0.3, p
    left, total = fits[True].left_out["gripper"]
    assert 0.3 * total < left < 0.7 * total and fits[False].left_out["gripper"] == (0, total)
    assert fits[True].rms_after[g] < 1e-3 < fits[False].rms_after[g]
