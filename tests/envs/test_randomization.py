"""Sim-to-real knobs: each one changes what it names (and nothing else), is seeded, and is off by default."""

from __future__ import annotations

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.randomization import (
    _FIELDS,
    ModelNominal,
    PhysicalRandomization,
    Randomization,
    VisualRandomization,
    domain_randomize,
)

ENV_ID = "twinarm/SO101-PickCube-v0"

#: knob -> (config, the model fields it must change).
MODEL_KNOBS: dict[str, tuple[Randomization, set[str]]] = {
    "light_pos": (Randomization(visual=VisualRandomization(light_pos_std=0.1)), {"light_pos", "light_dir"}),
    "light_intensity": (Randomization(visual=VisualRandomization(light_intensity_scale=(0.5, 0.9))), {"light_diffuse"}),
    "table_rgb": (Randomization(visual=VisualRandomization(table_rgb_jitter=0.2)), {"mat_rgba"}),
    "object_rgb": (Randomization(visual=VisualRandomization(object_rgb_jitter=0.2)), {"geom_rgba"}),
    "camera_pos": (Randomization(visual=VisualRandomization(camera_pos_std=0.01)), {"cam_pos"}),
    "camera_rot": (Randomization(visual=VisualRandomization(camera_rot_std=0.05)), {"cam_quat"}),
    "camera_fovy": (Randomization(visual=VisualRandomization(camera_fovy_jitter=5.0)), {"cam_fovy"}),
    "object_mass": (Randomization(physical=PhysicalRandomization(object_mass_scale=(0.5, 2.0))), {"body_mass", "body_inertia"}),
    "object_size": (
        Randomization(physical=PhysicalRandomization(object_size_scale=(0.8, 1.2))),
        {"geom_size", "geom_rbound", "geom_aabb", "body_inertia"},
    ),
    "object_friction": (Randomization(physical=PhysicalRandomization(object_friction_scale=(0.5, 1.5))), {"geom_friction"}),
    "joint_damping": (Randomization(physical=PhysicalRandomization(joint_damping_scale=(0.5, 1.5))), {"dof_damping"}),
    "armature": (Randomization(physical=PhysicalRandomization(armature_scale=(0.5, 1.5))), {"dof_armature"}),
    "actuator_gain": (
        Randomization(physical=PhysicalRandomization(actuator_gain_scale=(0.5, 1.5))),
        {"actuator_gainprm", "actuator_biasprm"},
    ),
}


def _model_fields(env: gym.Env) -> dict[str, np.ndarray]:
    m = env.unwrapped.physics.model
    return {name: np.array(getattr(m, name), copy=True) for name in _FIELDS}


@pytest.mark.parametrize("knob", sorted(MODEL_KNOBS))
def test_model_knob_changes_what_it_names_and_is_seeded(knob: str) -> None:
    cfg, expected = MODEL_KNOBS[knob]
    nominal = _model_fields(gym.make(ENV_ID, obs_type="state"))
    env_a = gym.make(ENV_ID, obs_type="state", randomization=cfg)
    env_a.reset(seed=1)
    a1 = _model_fields(env_a)
    changed = {k for k in _FIELDS if not np.array_equal(a1[k], nominal[k])}
    assert changed == expected
    env_a.reset(seed=2)
    a2 = _model_fields(env_a)
    assert any(not np.array_equal(a1[k], a2[k]) for k in expected), "a new episode must re-draw"
    env_b = gym.make(ENV_ID, obs_type="state", randomization=cfg.to_dict())
    env_b.reset(seed=1)
    b1 = _model_fields(env_b)
    assert all(np.array_equal(a1[k], b1[k]) for k in _FIELDS), "same seed, same draw"


def test_object_size_rescales_the_task_geometry() -> None:
    env = gym.make(ENV_ID, obs_type="state", randomization={"physical": {"object_size_scale": [1.2, 1.2]}})
    obs, _ = env.reset(seed=0)
    task = env.unwrapped.task
    assert task.cube_half == pytest.approx(1.2 * 0.0125)
    assert obs["environment_state"][2] == pytest.approx(task.cube_half)


def test_visual_knobs_change_the_image() -> None:
    kw = dict(obs_type="pixels", image_size=(48, 64), render_mode="rgb_array")
    plain, _ = gym.make(ENV_ID, **kw).reset(seed=0)
    vis = Randomization(visual=VisualRandomization(light_intensity_scale=(0.3, 0.5), camera_fovy_jitter=10.0))
    jittered, _ = gym.make(ENV_ID, randomization=vis, **kw).reset(seed=0)
    diff = np.abs(plain["pixels"]["front"].astype(int) - jittered["pixels"]["front"].astype(int)).mean()
    assert diff > 5


def test_observation_noise_is_seeded_and_only_on_agent_pos() -> None:
    cfg = Randomization(obs_noise_std=0.01)
    env = gym.make(ENV_ID, obs_type="state", randomization=cfg)
    obs, _ = env.reset(seed=3)
    truth = env.unwrapped.physics.joint_positions()
    err = obs["agent_pos"] - truth
    assert 0 < np.abs(err).max() < 0.06
    obs2, _ = gym.make(ENV_ID, obs_type="state", randomization=cfg).reset(seed=3)
    np.testing.assert_array_equal(obs["agent_pos"], obs2["agent_pos"])
    plain, _ = gym.make(ENV_ID, obs_type="state").reset(seed=3)
    np.testing.assert_array_equal(obs["environment_state"], plain["environment_state"])


def test_action_delay_applies_each_action_that_many_steps_later() -> None:
    env = gym.make(ENV_ID, obs_type="state", randomization={"action_delay_steps": 2})
    env.reset(seed=0)
    phys = env.unwrapped.physics
    home_ctrl = phys.data.ctrl.copy()
    actions = [phys.home_joints() + 0.05 * (k + 1) for k in range(4)]
    for k, a in enumerate(actions):
        env.step(a.astype(np.float32))
        if k < 2:
            np.testing.assert_array_equal(phys.data.ctrl, home_ctrl)
        else:
            np.testing.assert_allclose(phys.targets(), phys.spec.clip_action(actions[k - 2].astype(np.float32)), atol=1e-6)


def test_control_jitter_varies_the_period_reproducibly() -> None:
    def times(seed: int) -> np.ndarray:
        env = gym.make(ENV_ID, obs_type="state", randomization={"control_jitter": 0.25})
        env.reset(seed=seed)
        phys = env.unwrapped.physics
        out = []
        for _ in range(12):
            before = phys.data.time
            env.step(phys.home_joints().astype(np.float32))
            out.append(phys.data.time - before)
        return np.array(out)

    a, b, c = times(0), times(0), times(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    period = 1 / 30
    assert a.std() > 0 and np.all(np.abs(a - period) <= 0.25 * period + 1e-9)


def test_default_is_off_and_identical_to_no_kwarg() -> None:
    def rollout(**kw) -> list[np.ndarray]:
        env = gym.make(ENV_ID, obs_type="state", **kw)
        obs, _ = env.reset(seed=5)
        env.action_space.seed(5)
        out = [obs["agent_pos"], obs["environment_state"]]
        for _ in range(10):
            obs, *_ = env.step(env.action_space.sample())
            out += [obs["agent_pos"], obs["environment_state"]]
        return out

    for x, y in zip(rollout(), rollout(randomization=Randomization()), strict=True):
        np.testing.assert_array_equal(x, y)


def test_config_is_json_round_trippable_and_validated() -> None:
    cfg = Randomization(
        visual=VisualRandomization(camera_pos_std=0.01),
        physical=PhysicalRandomization(object_mass_scale=(0.8, 1.2)),
        obs_noise_std=0.002,
        action_delay_steps=1,
    )
    assert Randomization.coerce(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown"):
        Randomization.coerce({"obs_noise": 0.1})
    with pytest.raises(ValueError):
        Randomization(physical=PhysicalRandomization(object_mass_scale=(2.0, 1.0)))


def test_domain_randomize_on_a_batch_redraws_from_nominal() -> None:
    models = [ArmPhysics.from_arm("so101").model for _ in range(3)]
    nominal = [ModelNominal.capture(m) for m in models]
    cfg = {"physical": {"joint_damping_scale": [0.5, 1.5]}}
    domain_randomize(models, np.random.default_rng(0), cfg, nominal)
    damp = [m.dof_damping.copy() for m in models]
    assert not np.array_equal(damp[0], damp[1]) and not np.array_equal(damp[1], damp[2])
    for _ in range(5):  # re-drawing never compounds
        domain_randomize(models, np.random.default_rng(1), cfg, nominal)
    ratio = models[0].dof_damping / nominal[0].values["dof_damping"]
    assert np.all((ratio >= 0.5) & (ratio <= 1.5))
    single = ArmPhysics.from_arm("so101").model
    domain_randomize(single, np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(single.dof_damping, damp[0])


def test_pickle_keeps_the_randomized_episode() -> None:
    cfg = Randomization(physical=PhysicalRandomization(actuator_gain_scale=(0.5, 1.5)), action_delay_steps=1)
    env = gym.make(ENV_ID, obs_type="state", randomization=cfg).unwrapped
    env.reset(seed=4)
    env.step(env.physics.home_joints().astype(np.float32))
    clone = pickle.loads(pickle.dumps(env))
    np.testing.assert_array_equal(clone.physics.model.actuator_gainprm, env.physics.model.actuator_gainprm)
    a = env.physics.home_joints().astype(np.float32) + 0.1
    o1, *_ = env.step(a)
    o2, *_ = clone.step(a)
    np.testing.assert_array_equal(o1["agent_pos"], o2["agent_pos"])


def test_physical_draws_recompute_the_constants_mujoco_derives_from_them() -> None:
    """Masses, inertias and armatures set the compile-time constants the contact solver scales by (invweight0);
    a draw must leave them as a fresh compile of the drawn model would (stale ones made a grasp blow up)."""
    import copy

    import mujoco

    cfg = Randomization(physical=PhysicalRandomization(object_mass_scale=(0.5, 2.0), armature_scale=(0.5, 1.5)))
    env = gym.make(ENV_ID, obs_type="state", randomization=cfg)
    env.reset(seed=4)
    m = env.unwrapped.physics.model
    ref = copy.deepcopy(m)
    mujoco.mj_setConst(ref, mujoco.MjData(ref))
    for name in ("dof_invweight0", "body_invweight0", "body_subtreemass"):
        np.testing.assert_allclose(getattr(m, name), getattr(ref, name), rtol=1e-12, err_msg=name)
    nominal = gym.make(ENV_ID, obs_type="state").unwrapped.physics.model
    assert not np.allclose(m.dof_invweight0, nominal.dof_invweight0)  # the draw did change them
    env.close()


def test_sim2real_preset_is_valid_and_a_light_cube_no_longer_destabilizes_the_grasp() -> None:
    from twinarm.envs.experts import expert_episodes
    from twinarm.envs.randomization import PRESETS

    for preset in PRESETS.values():
        assert Randomization.coerce(json.loads(json.dumps(preset.to_dict()))) == preset
    mass_only = Randomization(physical=PhysicalRandomization(object_mass_scale=(0.7, 1.5)))
    [(success, _)] = expert_episodes("twinarm/SO101-PickPlace-v0", [9], randomization=mass_only)
    assert success  # NaN accelerations mid-grasp before the constants were recomputed
    runs = list(expert_episodes(ENV_ID, range(5), randomization=PRESETS["sim2real"]))
    assert sum(ok for ok, _ in runs) >= 4

