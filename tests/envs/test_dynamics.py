"""Dynamics files (`envs.dynamics`): what they set in the model, how envs load them (with randomization on top,
through pickling), and the errors that name what is wrong."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.arms import get_arm
from twinarm.cli.config import load_dynamics
from twinarm.envs.dynamics import PARAMS, ArmDynamics, apply_dynamics, read_dynamics
from twinarm.envs.physics import ArmPhysics

SO101 = get_arm("so101")
ENV = "twinarm/SO101-Reach-v0"


def scaled(factor: dict[str, float], delay: int = 0) -> dict:
    """The SO-101 model's own values, each parameter times `factor[param]`."""
    nominal = read_dynamics(ArmPhysics.from_arm(SO101).model, SO101)
    joints = {n: {p: v[p] * factor.get(p, 1.0) for p in PARAMS if p in v} for n, v in nominal.joints.items()}
    return {"arm": "so101", "action_delay_steps": delay, "joints": joints}


def test_apply_sets_each_parameter_where_mujoco_reads_it() -> None:
    physics = ArmPhysics.from_arm(SO101)
    m = physics.model
    apply_dynamics(m, SO101, {"arm": "so101", "joints": {"elbow_flex": {"kp": 9.0, "damping": 0.25, "max_torque": 1.5},
                                                         "wrist_roll": {"armature": 0.05, "frictionloss": 0.2}}})
    elbow, roll = m.actuator("elbow_flex").id, m.joint("wrist_roll").dofadr[0]
    assert m.actuator_gainprm[elbow, 0] == 9.0 and m.actuator_biasprm[elbow, 1] == -9.0
    assert m.dof_damping[m.joint("elbow_flex").dofadr[0]] == 0.25
    assert list(m.actuator_forcerange[elbow]) == [-1.5, 1.5] and m.actuator_forcelimited[elbow]
    assert m.dof_armature[roll] == 0.05 and m.dof_frictionloss[roll] == 0.2
    # Joints and parameters the file leaves out keep the model's values.
    assert m.actuator_gainprm[m.actuator("wrist_roll").id, 0] == ArmPhysics.from_arm(SO101).model.actuator_gainprm[0, 0]
    back = read_dynamics(m, SO101)
    assert back.joints["elbow_flex"]["kp"] == 9.0 and back.joints["wrist_roll"]["frictionloss"] == 0.2


def test_a_link_mass_scales_its_inertia_and_weighs_on_the_arm() -> None:
    """A wrist camera as 30 g more on the gripper body (the link wrist_roll moves): inertia scaled with it, the
    subtree masses MuJoCo derives recomputed, and the loaded arm sags further under gravity."""
    nominal = ArmPhysics.from_arm(SO101).model
    heavy = ArmPhysics.from_arm(SO101)
    m = heavy.model
    b = m.body("gripper").id
    apply_dynamics(m, SO101, {"arm": "so101", "joints": {"wrist_roll": {"mass": nominal.body_mass[b] + 0.03}}})
    assert m.body_mass[b] == pytest.approx(nominal.body_mass[b] + 0.03)
    np.testing.assert_allclose(m.body_inertia[b], nominal.body_inertia[b] * m.body_mass[b] / nominal.body_mass[b])
    assert m.body_subtreemass[m.body("upper_arm").id] == pytest.approx(nominal.body_subtreemass[nominal.body("upper_arm").id] + 0.03)
    assert read_dynamics(m, SO101).joints["wrist_roll"]["mass"] == pytest.approx(nominal.body_mass[b] + 0.03)
    light = ArmPhysics.from_arm(SO101)
    pose = np.array([0.0, -0.8, 0.8, 0.4, 0.0, 0.3])  # the forearm reaching out, so gravity loads the lift
    sag = []
    for phys in (light, heavy):
        phys.reset(pose)  # the targets at the pose too
        for _ in range(60):
            phys.step_control()
        sag.append(pose[1] - phys.joint_positions()[1])
    assert abs(sag[1]) > abs(sag[0]) + 1e-4, sag


def test_an_env_loads_a_file_and_keeps_it_through_pickling(tmp_path: Path) -> None:
    path = ArmDynamics.from_dict(scaled({"kp": 0.5, "damping": 2.0})).save(tmp_path / "dyn.json")
    env = gym.make(ENV, obs_type="state", dynamics=str(path)).unwrapped
    kp = env.physics.model.actuator_gainprm[env.physics.actuator_ids, 0]
    base = gym.make(ENV, obs_type="state").unwrapped
    assert np.allclose(kp, 0.5 * base.physics.model.actuator_gainprm[base.physics.actuator_ids, 0])
    env.reset(seed=3)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    assert np.array_equal(clone.physics.model.dof_damping, env.physics.model.dof_damping)
    a = np.asarray(env.spec_arm.home_pose, dtype=np.float32)
    assert np.array_equal(env.step(a)[0]["agent_pos"], clone.step(a)[0]["agent_pos"])
    # The sim arm follows differently: softer servos lag the home pose's neighbours.
    for e in (env, base):
        e.reset(seed=0)
    target = np.asarray(env.spec_arm.home_pose, dtype=np.float32) + 0.3 * ~env.spec_arm.gripper_mask
    soft, stiff = env.step(target)[0]["agent_pos"], base.step(target)[0]["agent_pos"]
    assert np.all(np.abs(soft - target)[:5] > np.abs(stiff - target)[:5])


def test_randomization_draws_around_the_fitted_values_and_latencies_add() -> None:
    dyn = scaled({"kp": 0.5}, delay=1)
    env = gym.make(ENV, obs_type="state", dynamics=dyn,
                   randomization={"physical": {"actuator_gain_scale": [2.0, 2.0]}, "action_delay_steps": 1}).unwrapped
    env.reset(seed=0)
    kp = env.physics.model.actuator_gainprm[env.physics.actuator_ids, 0]
    assert np.allclose(kp, [v["kp"] * 2.0 for v in dyn["joints"].values()])
    assert env.randomizer.cfg.action_delay_steps == 2
    # Two steps of latency: the first two actions leave the targets where the reset put them.
    start = env.physics.targets().copy()
    for _ in range(2):
        env.step(env.action_space.sample())
        assert np.array_equal(env.physics.targets(), start)
    env.step(env.action_space.sample())
    assert not np.array_equal(env.physics.targets(), start)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"arm": "koch", "joints": {}}, "cannot load into 'so101'"),
        ({"arm": "so101", "joints": {"elbow": {"kp": 3.0}}}, "['elbow'] that so101 lacks"),
        ({"arm": "so101", "joints": {"elbow_flex": {"stiffness": 3.0}}}, "elbow_flex: unknown parameters ['stiffness']"),
        ({"arm": "so101", "joints": {"elbow_flex": {"kp": 0.0}}}, "joints.elbow_flex.kp = 0.0: must be a finite number > 0"),
        ({"arm": "so101", "joints": {"wrist_roll": {"mass": 0}}}, "joints.wrist_roll.mass = 0: must be a finite number > 0"),
        ({"arm": "so101", "joints": {"elbow_flex": {"damping": -1}}}, "joints.elbow_flex.damping = -1"),
        ({"arm": "so101", "joints": {"elbow_flex": {"damping": float("nan")}}}, "damping = nan"),
        ({"arm": "so101", "action_delay_steps": 0.5, "joints": {}}, "action_delay_steps = 0.5"),
        ({"joints": {}}, "expected {'arm'"),
    ],
)
def test_bad_files_are_refused_naming_what_is_wrong(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        apply_dynamics(ArmPhysics.from_arm(SO101).model, SO101, data)
    assert message in str(err.value)


def test_cli_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match=r"--dynamics .*bad.json: .*not valid JSON"):
        load_dynamics(str(bad), "so101")
    with pytest.raises(SystemExit, match=r"dynamics file not found: .*missing.json"):
        load_dynamics(str(tmp_path / "missing.json"), "so101")
    good = tmp_path / "so101.json"
    good.write_text(json.dumps(scaled({})))
    with pytest.raises(SystemExit, match="fitted on arm 'so101', not 'koch'"):
        load_dynamics(str(good), "koch")
    assert load_dynamics(str(good), "so101")["arm"] == "so101"
