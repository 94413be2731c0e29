"""Shared fixtures for the real/ tests: virtual arms served on ptys for both protocols."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from real_helpers import SPECS

from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus
from twinarm.spec import ArmSpec


@pytest.fixture(params=["so101", "koch"])
def spec(request: pytest.FixtureRequest) -> ArmSpec:
    return SPECS[request.param]


@pytest.fixture
def served(spec: ArmSpec) -> Iterator[PtyServer]:
    """A virtual arm (in-memory joints, manual stepping) served on a pty in a thread."""
    arm = VirtualArm(spec)
    with PtyServer(VirtualBus(arm)) as server:
        yield server
