"""The arm spec: spaces, LeRobot features and the one unit conversion."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twinarm.arms import ARMS, SO101, get_arm
from twinarm.spec import ArmSpec, CameraSpec, JointSpec

ARM_NAMES = sorted(ARMS)


@pytest.mark.parametrize("arm", ARM_NAMES)
@pytest.mark.parametrize("obs_type", ["pixels", "pixels_agent_pos"])
def test_spaces_built_twice_are_equal(arm: str, obs_type: str) -> None:
    spec = get_arm(arm)
    assert spec.observation_space(obs_type) == spec.observation_space(obs_type)
    assert spec.action_space() == spec.action_space()


@pytest.mark.parametrize("arm", ARM_NAMES)
def test_action_space_is_joint_limits_in_si_units(arm: str) -> None:
    spec = get_arm(arm)
    space = spec.action_space()
    assert space.shape == (spec.dof,)
    np.testing.assert_allclose(space.low, spec.lower.astype(np.float32))
    np.testing.assert_allclose(space.high, spec.upper.astype(np.float32))
    assert np.all(space.low[spec.gripper_mask] == 0) and np.all(space.high[spec.gripper_mask] == 1)


@pytest.mark.parametrize("arm", ARM_NAMES)
def test_unit_round_trip_is_exact(arm: str) -> None:
    spec = get_arm(arm)
    rng = np.random.default_rng(0)
    x = rng.uniform(spec.lower, spec.upper, size=(1000, spec.dof))
    back = spec.from_lerobot(spec.to_lerobot(x))
    np.testing.assert_array_max_ulp(back, x, maxulp=2)
    x32 = x.astype(np.float32)
    assert spec.to_lerobot(x32).dtype == np.float32
    np.testing.assert_array_max_ulp(spec.from_lerobot(spec.to_lerobot(x32)), x32, maxulp=1)


def test_so101_lerobot_units_are_degrees_and_percent() -> None:
    spec = get_arm("so101")
    x = np.array([np.pi / 2, -np.pi / 4, 0.0, np.pi, -np.pi / 2, 0.25])
    np.testing.assert_allclose(spec.to_lerobot(x), [90.0, -45.0, 0.0, 180.0, -90.0, 25.0])
    with pytest.raises(ValueError, match="6 joints"):
        spec.to_lerobot(np.zeros(5))
    assert spec.lerobot_unit_labels == ("deg",) * 5 + ("0..100",)


def test_aloha_lerobot_units_are_radians_and_fractions() -> None:
    spec = get_arm("aloha")
    x = np.linspace(-1.0, 1.0, spec.dof)
    np.testing.assert_array_equal(spec.to_lerobot(x), x)
    assert spec.lerobot_unit_labels == (("rad",) * 6 + ("0..1",)) * 2


@pytest.mark.parametrize("arm", ARM_NAMES)
def test_lerobot_features_follow_the_spec(arm: str) -> None:
    spec = get_arm(arm)
    feats = spec.lerobot_features()
    names = [f"{j}.pos" for j in spec.joint_names]
    assert feats["observation.state"] == {"dtype": "float32", "shape": [spec.dof], "names": names}
    assert feats["action"]["names"] == names
    for cam in spec.cameras:
        f = feats[f"observation.images.{cam.name}"]
        assert f["dtype"] == "video" and f["shape"] == [cam.height, cam.width, 3]
        assert f["names"] == ["height", "width", "channels"]
    small = spec.resolve_cameras(image_size=(96, 128))
    assert all(f["shape"] == [96, 128, 3] for k, f in spec.lerobot_features(small, use_videos=False).items() if "images" in k)
    assert spec.lerobot_features(env_state_dim=7)["observation.environment_state"]["shape"] == [7]
    for bad, said in [(96, "must be \\(height, width\\), got 96"), ((96, 0), "must be positive"),
                      ("96x128", "must be \\(height, width\\)")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"image_size {said}"):
            spec.resolve_cameras(image_size=bad)


def test_so101_joint_names_are_lerobot_motor_names() -> None:
    assert get_arm("so101").joint_names == (
        "shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper",
    )  # fmt: skip


def test_state_variant_needs_environment_state() -> None:
    with pytest.raises(ValueError, match="environment_state"):
        get_arm("so101").observation_space("state")
    with pytest.raises(ValueError, match="obs_type"):
        get_arm("so101").observation_space("depth")


def test_spec_rejects_inconsistent_definitions() -> None:
    with pytest.raises(ValueError, match="lower limit"):
        JointSpec("j", 1.0, -1.0)
    with pytest.raises(ValueError, match="gripper"):
        JointSpec("g", 0.0, 2.0, kind="gripper")
    with pytest.raises(ValueError, match="duplicate joint"):
        ArmSpec("x", "X", "x", (JointSpec("a", -1, 1), JointSpec("a", -1, 1)), 30, (CameraSpec("c"),))
    with pytest.raises(KeyError, match="known cameras"):
        get_arm("so101").camera("top")
    with pytest.raises(KeyError, match="known arms"):
        get_arm("ur5")


@pytest.mark.parametrize("arm", ARM_NAMES)
def test_home_is_the_sim_models_home_keyframe(arm: str) -> None:
    """The spec's home pose (where real evaluations start) is where the sim's episodes start."""
    import gymnasium as gym

    import twinarm  # noqa: F401
    from twinarm.registration import ENV_ENTRIES

    spec = get_arm(arm)
    env = gym.make(next(e.sim_id for e in ENV_ENTRIES if e.arm == arm), obs_type="state")
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(env.unwrapped.physics.home_joints(), spec.home_pose, atol=1e-4)
    np.testing.assert_allclose(obs["agent_pos"], spec.home_pose, atol=1e-4)
    env.close()


def test_home_must_fit_the_joints() -> None:
    so101 = get_arm("so101")
    with pytest.raises(ValueError, match="home .* must give each of"):
        dataclasses.replace(so101, home=(0.0,) * 5)
    with pytest.raises(ValueError, match="within its limits"):
        dataclasses.replace(so101, home=(9.0,) * 6)


def test_a_step_limit_at_or_below_zero_is_refused() -> None:
    """np.clip with a negative step returns present - |step|: every joint would walk to its lower limit."""
    present = np.zeros(SO101.dof)
    with pytest.raises(ValueError, match="max_step must be above 0"):
        SO101.limit_target(present + 0.5, present, -0.2)
    with pytest.raises(ValueError, match="max_step must be above 0"):
        SO101.limit_target(present + 0.5, present, np.array([0.2, 0.2, 0.0, 0.2, 0.2, 0.2]))
    np.testing.assert_allclose(SO101.limit_target(present + 0.5, present, 0.2), present + 0.2)


@pytest.mark.parametrize(
    "options",
    [["joints"], "joints", {"joints": {"shoulder_pan": 0.0}}, {"joints": "abc"}, {"joints": [True] * 6},
     {"joints": [0.0, [1.0, 2.0]]}, {"joints": np.zeros(6, complex)}],
)  # fmt: skip
def test_malformed_reset_options_are_refused_by_name(options: object) -> None:
    """A list, a per-joint dict or a string used to fail inside numpy (AttributeError, float() of a dict), unnamed."""
    with pytest.raises(ValueError, match=r"reset options must be a dict|reset option 'joints' must be 6 finite values"):
        SO101.reset_joints(options)


def test_reset_joints_takes_a_tensor_that_requires_grad() -> None:
    torch = pytest.importorskip("torch")
    q = SO101.reset_joints({"joints": torch.full((6,), 0.1, requires_grad=True)})
    np.testing.assert_allclose(q, np.full(6, 0.1), rtol=1e-6)


def test_reset_joints_far_outside_the_limits_are_clipped_with_a_warning() -> None:
    """A pose given in LeRobot's degrees (90 for a right angle) used to be clipped to the limits without a word;
    a sliver past a limit (a real arm's calibration) is still clipped quietly."""
    import warnings

    deg = np.array([0.0, 90.0, -45.0, 0.0, 0.0, 50.0])
    with pytest.warns(UserWarning, match=r"shoulder_lift = 90 lies .* outside its limits .*from_lerobot"):
        q = SO101.reset_joints({"joints": deg})
    np.testing.assert_array_equal(q, SO101.clip_action(deg))
    near = SO101.upper + 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(SO101.reset_joints({"joints": near}), SO101.upper)
