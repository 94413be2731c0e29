"""Policy registry: name -> policy class, imported lazily so `import twinarm.agents` stays light."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinarm.agents.policy import Policy, PolicyConfig

#: Policy name -> "module:Class" of its policy class (the config class hangs off `config_class`).
POLICIES: dict[str, str] = {
    "act": "twinarm.agents.act.act:ACTPolicy",
    "diffusion": "twinarm.agents.diffusion.diffusion:DiffusionPolicy",
    "tdmpc": "twinarm.agents.tdmpc.tdmpc:TDMPCPolicy",
}


def get_policy_class(name: str) -> type[Policy]:
    if name not in POLICIES:
        raise KeyError(f"unknown policy {name!r}; known policies: {sorted(POLICIES)}")
    module, attr = POLICIES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def get_config_class(name: str) -> type[PolicyConfig]:
    return get_policy_class(name).config_class


def make_policy(name: str, config: PolicyConfig | None = None, stats: dict | None = None, **overrides: object) -> Policy:
    """Build policy `name` from `config` (or its config class with `overrides`) and normalization stats."""
    klass = get_policy_class(name)
    if config is None:
        fields = {"input_features", "output_features"}
        klass.config_class.check_overrides({k: v for k, v in overrides.items() if k not in fields})  # names a typo
        config = klass.config_class(**overrides)  # type: ignore[arg-type]
    return klass(config, stats)
