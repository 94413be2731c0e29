"""The registry of supported arms: name -> ArmSpec. Limits come from each arm's model in `assets/`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinarm.spec import ArmSpec, CameraSpec, JointSpec

if TYPE_CHECKING:
    from gymnasium.envs.registration import EnvSpec

SO101 = ArmSpec(
    name="so101",
    display_name="SO-101",
    robot_type="so_follower",
    older_robot_types=("so101_follower",),
    joints=(
        JointSpec("shoulder_pan", -1.91986, 1.91986, motor_id=1, motor_model="sts3215"),
        JointSpec("shoulder_lift", -1.74533, 1.74533, motor_id=2, motor_model="sts3215"),
        JointSpec("elbow_flex", -1.69, 1.69, motor_id=3, motor_model="sts3215"),
        JointSpec("wrist_flex", -1.65806, 1.65806, motor_id=4, motor_model="sts3215"),
        JointSpec("wrist_roll", -2.74385, 2.84121, motor_id=5, motor_model="sts3215"),
        JointSpec("gripper", 0.0, 1.0, kind="gripper", motor_id=6, motor_model="sts3215"),
    ),
    control_hz=30,
    cameras=(CameraSpec("front"), CameraSpec("wrist")),
    lerobot_units="degrees",
    motor_bus="feetech",
    home=(0.0, -0.6, 0.45, 1.4, 0.0, 0.29926),
)

SO100 = ArmSpec(
    name="so100",
    display_name="SO-100",
    robot_type="so_follower",
    older_robot_types=("so100_follower",),
    joints=(
        JointSpec("shoulder_pan", -2.0, 2.0, motor_id=1, motor_model="sts3215"),
        JointSpec("shoulder_lift", -1.75, 1.75, motor_id=2, motor_model="sts3215"),
        JointSpec("elbow_flex", -1.7, 1.7, motor_id=3, motor_model="sts3215"),
        JointSpec("wrist_flex", -1.75, 1.75, motor_id=4, motor_model="sts3215"),
        JointSpec("wrist_roll", -2.8, 2.8, motor_id=5, motor_model="sts3215"),
        JointSpec("gripper", 0.0, 1.0, kind="gripper", motor_id=6, motor_model="sts3215"),
    ),
    control_hz=30,
    cameras=(CameraSpec("front"), CameraSpec("wrist")),
    lerobot_units="degrees",
    motor_bus="feetech",
    home=(0.0, -0.6, 0.45, 1.4, 0.0, 0.34146),
)

#: Koch v1.1 follower: XL430-W250 on the two shoulder joints, XL330-M288 on the rest (LeRobot's koch_follower).
KOCH = ArmSpec(
    name="koch",
    display_name="Koch v1.1",
    robot_type="koch_follower",
    joints=(
        JointSpec("shoulder_pan", -2.5, 2.5, motor_id=1, motor_model="xl430-w250"),
        JointSpec("shoulder_lift", -1.8, 1.8, motor_id=2, motor_model="xl430-w250"),
        JointSpec("elbow_flex", -1.8, 1.8, motor_id=3, motor_model="xl330-m288"),
        JointSpec("wrist_flex", -2.1, 2.1, motor_id=4, motor_model="xl330-m288"),
        JointSpec("wrist_roll", -2.8, 2.8, motor_id=5, motor_model="xl330-m288"),
        JointSpec("gripper", 0.0, 1.0, kind="gripper", motor_id=6, motor_model="xl330-m288"),
    ),
    control_hz=30,
    cameras=(CameraSpec("front"), CameraSpec("wrist")),
    lerobot_units="degrees",
    lerobot_default_mode="range",
    motor_bus="dynamixel",
    home=(0.0, 0.42, -0.38, 1.53, 0.0, 0.38889),
)


#: ALOHA's gripper 0..1 as ACT normalizes the finger position (its constants.py, copied by gym-aloha; LeRobot's
#: `aloha_sim_*` datasets are in it): closed 0.01844 m, open 0.05800 m. The finger itself travels 0.021..0.057 m, so
#: a state reads 0.065..0.975.
ACT_GRIPPER_SPAN = (0.01844, 0.05800)


def _vx300s_side(side: str, first_id: int) -> tuple[JointSpec, ...]:
    """One ViperX 300 6DOF follower of the ALOHA pair; limits from assets/aloha/aloha.xml, ids as Trossen ships them."""
    big, small = "xm540-w270", "xm430-w350"
    return (
        JointSpec(f"{side}_waist", -3.14158, 3.14158, motor_id=first_id, motor_model=big),
        JointSpec(f"{side}_shoulder", -1.85005, 1.25664, motor_id=first_id + 1, motor_model=big),
        JointSpec(f"{side}_elbow", -1.76278, 1.6057, motor_id=first_id + 3, motor_model=big),
        JointSpec(f"{side}_forearm_roll", -3.14158, 3.14158, motor_id=first_id + 5, motor_model=small),
        JointSpec(f"{side}_wrist_angle", -1.8675, 2.23402, motor_id=first_id + 6, motor_model=small),
        JointSpec(f"{side}_wrist_rotate", -3.14158, 3.14158, motor_id=first_id + 7, motor_model=small),
        JointSpec(f"{side}_gripper", 0.0, 1.0, kind="gripper", motor_id=first_id + 8, motor_model=small,
                  gripper_span=ACT_GRIPPER_SPAN),
    )


#: ALOHA: two ViperX 300 followers in LeRobot/ACT's 14-D order (left arm first), radians, gripper 0..1.
ALOHA = ArmSpec(
    name="aloha",
    display_name="ALOHA (2x ViperX 300)",
    robot_type="aloha",
    joints=_vx300s_side("left", 1) + _vx300s_side("right", 1),
    control_hz=50,
    cameras=(CameraSpec("top", fps=50),),
    lerobot_units="radians",
    motor_bus="dynamixel",
    optional_cameras=(CameraSpec("left_wrist", fps=50), CameraSpec("right_wrist", fps=50)),
    # the keyframe's fingers (0.024 m) in ACT's gripper units
    home=(0.0, -0.96, 1.16, 0.0, -0.3, 0.0, (0.024 - ACT_GRIPPER_SPAN[0]) / (ACT_GRIPPER_SPAN[1] - ACT_GRIPPER_SPAN[0])) * 2,
)

ARMS: dict[str, ArmSpec] = {spec.name: spec for spec in (SO101, SO100, KOCH, ALOHA)}


def get_arm(name: str | ArmSpec) -> ArmSpec:
    """Look an arm up by its short name (`so101`, ...), with a helpful error; an ArmSpec is itself."""
    if isinstance(name, ArmSpec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"arm must be an arm's name or an ArmSpec, got {type(name).__name__}")
    if name.lower() not in ARMS:
        from twinarm.plugins import load_plugins

        load_plugins()  # once: installed packages' own arms (`twinarm.plugins` entry points)
    try:
        return ARMS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown arm {name!r}; known arms: {sorted(ARMS)} (your own: twinarm.register_arm)") from None


def register_arm(spec: ArmSpec) -> ArmSpec:
    """Add your own arm (a variant of one, e.g. `dataclasses.replace(SO101, name="so101_wide", ...)`, or a new
    one) so that it is known by name wherever an arm is: `register_env`, `arm=` of the envs, datasets, the CLI's
    `--arm`. Its MuJoCo model is `spec.model` (an asset folder of twinarm's, e.g. "so101", or a path to your
    scene.xml). Idempotent; a name taken by another spec is refused."""
    if spec.name != spec.name.lower():
        raise ValueError(f"arm name {spec.name!r}: use lower case (arms are looked up by lower-case name)")
    known = ARMS.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"arm name {spec.name!r} is taken (by {known.display_name}); give yours another name")
    ARMS[spec.name] = spec
    return spec


def arms_for_robot_type(robot_type: str | None) -> tuple[ArmSpec, ...]:
    """The arms a LeRobot dataset's `robot_type` may be: an older name (`so100_follower`) or twinarm's short name
    (`so101`) names one; LeRobot's `so_follower` both SO arms (SO-101 first). Empty for another robot."""
    exact = tuple(a for a in ARMS.values() if robot_type == a.name or robot_type in a.older_robot_types)
    return exact or tuple(a for a in ARMS.values() if robot_type == a.robot_type)


def arm_for_robot_type(robot_type: str | None) -> ArmSpec | None:
    """The arm a LeRobot dataset's `robot_type` names (`so_follower`: the SO-101, as LeRobot itself writes one name
    for both SO arms; `so100_follower`, or twinarm's short name `so101`), None for another robot."""
    return next(iter(arms_for_robot_type(robot_type)), None)


def same_robot(a: str | None, b: str | None) -> bool:
    """Whether two datasets' `robot_type`s name one robot: LeRobot's `so_follower` and the older `so101_follower`
    and `so100_follower` are one (LeRobot merges and resumes them as one); unknown names only when equal."""
    if a == b:
        return True
    ra, rb = arm_for_robot_type(a), arm_for_robot_type(b)
    return ra is not None and rb is not None and ra.robot_type == rb.robot_type


class IdFixesArm:
    """Mixin for the sim and real arm envs (which hold `spec_arm` and `close()`): `gymnasium.make` sets `spec` after
    construction, the one place that sees both the id and an `arm=` overriding the arm it registered (Gymnasium
    keeps such a kwarg), so a contradicting arm is refused there, the env closed (a real arm left limp)."""

    spec_arm: ArmSpec

    @property
    def spec(self) -> EnvSpec | None:
        return self.__dict__.get("_env_spec")

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        try:
            check_id_arm(value.id if value is not None else None, self.spec_arm)
        except ValueError:
            self.close()  # type: ignore[attr-defined]  # the env's own (gym.Env's at least)
            raise
        self.__dict__["_env_spec"] = value


def check_id_arm(env_id: str | None, arm: ArmSpec) -> None:
    """Refuse an `arm=` that contradicts the arm an env id registered (Gymnasium lets `gym.make(id, arm=...)`
    override it silently): an id fixes its arm, sim and real alike."""
    import gymnasium as gym  # the registry is read at make time, after `import twinarm` filled it

    registered = gym.registry.get(env_id) if env_id is not None else None
    fixed = registered.kwargs.get("arm") if registered is not None else None
    fixed = getattr(fixed, "name", fixed)  # an id may be registered with the ArmSpec itself
    if fixed is not None and fixed != arm.name:
        raise ValueError(
            f"{env_id} is the {fixed} arm's env, got arm={arm.name!r}; the id fixes the arm: "
            f"use the {arm.name} id of the task instead (`twinarm envs` lists them)"
        )
