"""Named sim-to-real perturbations, one kind at a time, for stress tests (`twinarm robustness`) and as
`--randomization NAME` presets: each is a `Randomization` that turns one group of knobs well past the
`sim2real` preset's spread, so a policy's weak spot shows before it meets a real arm. `SWEEPS` turn one knob up
step by step (`robustness --sweep NAME`), to see how much of it a policy stands."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from twinarm.envs.randomization import PRESETS, PhysicalRandomization, Randomization, VisualRandomization


@dataclass(frozen=True)
class Perturbation:
    what: str
    randomization: Randomization
    visual: bool = False
    """Changes only what the cameras see (nothing to a policy that reads no camera)."""
    objects: bool = False
    """Changes only the task's objects (nothing in a task without any, such as Reach)."""


def _physical(**kw: tuple[float, float]) -> Randomization:
    return Randomization(physical=PhysicalRandomization(**kw))


def _visual(**kw: float | tuple[float, float]) -> Randomization:
    return Randomization(visual=VisualRandomization(**kw))  # type: ignore[arg-type]


PERTURBATIONS: dict[str, Perturbation] = {
    "nominal": Perturbation("the model as it is", Randomization()),
    "lighting": Perturbation("lights moved ~30 cm (turned to keep aiming at the table), 0.5-1.5x as bright",
                             _visual(light_pos_std=0.3, light_intensity_scale=(0.5, 1.5)), visual=True),
    "colours": Perturbation("table and object colours +/-0.2 per channel",
                            _visual(table_rgb_jitter=0.2, object_rgb_jitter=0.2), visual=True),
    "camera": Perturbation("cameras moved ~2 cm, turned ~2 deg, field of view +/-4 deg",
                           _visual(camera_pos_std=0.02, camera_rot_std=0.04, camera_fovy_jitter=4.0), visual=True),
    "object-mass": Perturbation("objects 0.5-2x as heavy", _physical(object_mass_scale=(0.5, 2.0)), objects=True),
    "object-friction": Perturbation("objects 0.5-1.5x as grippy", _physical(object_friction_scale=(0.5, 1.5)),
                                    objects=True),
    "object-size": Perturbation("objects 0.85-1.15x the size", _physical(object_size_scale=(0.85, 1.15)),
                                objects=True),
    "servos": Perturbation("servo gains 0.7-1.3x, joint damping 0.6-1.6x, armature 0.7-1.4x",
                           _physical(actuator_gain_scale=(0.7, 1.3), joint_damping_scale=(0.6, 1.6),
                                     armature_scale=(0.7, 1.4))),
    "encoder-noise": Perturbation("joint readings with 0.57 deg (0.01 rad) of noise", Randomization(obs_noise_std=0.01)),
    "latency-1": Perturbation("each action applied one control step late", Randomization(action_delay_steps=1)),
    "latency-2": Perturbation("each action applied two control steps late", Randomization(action_delay_steps=2)),
    "jitter": Perturbation("control periods 0.8-1.2x as long, in whole substeps", Randomization(control_jitter=0.2)),
    "sim2real": Perturbation("the sim2real preset: every kind at once, milder", PRESETS["sim2real"]),
}  # fmt: skip


def preset_names() -> list[str]:
    """Every name `randomization=` (and the CLI's `--randomization`) takes: `randomization.PRESETS`, then each
    perturbation's (sim2real is both, listed once)."""
    return list(dict.fromkeys([*sorted(PRESETS), *PERTURBATIONS]))


def named_randomization(name: str) -> Randomization:
    """The `Randomization` a preset name stands for (`sim2real`, `servos`, `latency-1`, ...); the one place names
    are resolved, for the envs' `randomization=` kwarg and the CLI alike. ValueError listing the names otherwise."""
    if name in PRESETS:
        return PRESETS[name]
    if name in PERTURBATIONS:
        return PERTURBATIONS[name].randomization
    raise ValueError(f"unknown randomization preset {name!r}; presets: {', '.join(preset_names())} (or pass a "
                     "Randomization, or a dict of its fields)")  # fmt: skip


@dataclass(frozen=True)
class Sweep:
    """One knob at increasing strength (`twinarm robustness --sweep NAME`): how much of it a policy stands."""

    what: str
    points: tuple[tuple[str, Randomization], ...]
    visual: bool = False
    objects: bool = False

    @property
    def reference(self) -> str:
        """The label of the point that changes nothing (the row the others are compared with)."""
        return next(label for label, r in self.points if r == Randomization())


def _points(label: str, values: tuple[float, ...], make: Callable[[float], Randomization]) -> tuple[tuple[str, Randomization], ...]:
    return tuple((label.format(v), make(v)) for v in values)


SWEEPS: dict[str, Sweep] = {
    "latency": Sweep("actions applied N control steps late",
                     _points("{:g} steps", (0, 1, 2, 3, 4, 6), lambda n: Randomization(action_delay_steps=int(n)))),
    "servo-gain": Sweep("every servo's gain scaled by the same factor",
                        _points("{:g}x", (0.4, 0.6, 0.8, 1.0, 1.25, 1.5),
                                lambda g: _physical(actuator_gain_scale=(g, g)) if g != 1.0 else Randomization())),
    "encoder-noise": Sweep("joint-reading noise, std in degrees",
                           _points("{:g} deg", (0, 0.25, 0.5, 1, 2, 4),
                                   lambda d: Randomization(obs_noise_std=math.radians(d)))),
    "jitter": Sweep("control periods up to this fraction longer or shorter (rounded to whole substeps)",
                    _points("{:g}", (0, 0.1, 0.2, 0.3, 0.5), lambda j: Randomization(control_jitter=j))),
    "object-mass": Sweep("objects' mass scaled by the same factor",
                         _points("{:g}x", (0.25, 0.5, 1.0, 2.0, 4.0),
                                 lambda m: _physical(object_mass_scale=(m, m)) if m != 1.0 else Randomization()),
                         objects=True),
    "camera-shift": Sweep("cameras moved by noise of this std, in cm",
                          _points("{:g} cm", (0, 1, 2, 4, 8), lambda c: _visual(camera_pos_std=c / 100)), visual=True),
}  # fmt: skip
