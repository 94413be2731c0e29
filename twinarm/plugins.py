"""Your own tasks and arms, found by name wherever twinarm looks one up: a package that declares a `twinarm.plugins`
entry point (in its pyproject: `[project.entry-points."twinarm.plugins"] mytasks = "mytasks"`) is imported the first
time an id or an arm name is not known, and registers them there (`twinarm.register_env`, `twinarm.register_arm`).
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import entry_points

PLUGIN_GROUP = "twinarm.plugins"


@functools.cache
def load_plugins() -> tuple[str, ...]:
    """Import every installed package's `twinarm.plugins` entry point, once per process; the names loaded. One that
    fails to import is warned about, naming it, and the others still load."""
    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not stop twinarm's own ids from working
            warnings.warn(f"twinarm plugin {ep.name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}",
                          RuntimeWarning, stacklevel=2)  # fmt: skip
            continue
        loaded.append(ep.name)
    return tuple(loaded)
