"""Shared fixtures for the real/ tests: virtual arms served on ptys for both protocols, a terminal to type keys in."""

from __future__ import annotations

import gc
import os
import pty
from collections.abc import Iterator

import pytest
from real_helpers import SPECS

from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus
from twinarm.spec import ArmSpec


@pytest.fixture(autouse=True)
def _no_collection_pauses() -> Iterator[None]:
    """No cyclic garbage collection while a test talks to an emulator. These tests hold the vendor SDKs to their
    ~35 ms reply timeouts against emulators in this process's threads (and forked children), and late in a full
    run the test process is large, so a full collection in mid-test is a pause the emulators need not take
    (tests/real alone ran in 45 s instead of 64 with it). It was meant to stop single RX timeouts against an
    in-thread emulator and did not: one came back with it on, so every raw-SDK transaction is now retried
    (`real_helpers.retried`), as twinarm's bus retries. Re-enabled after each test, so garbage is still
    collected between tests."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture(params=["so101", "koch"])
def spec(request: pytest.FixtureRequest) -> ArmSpec:
    return SPECS[request.param]


@pytest.fixture
def served(spec: ArmSpec) -> Iterator[PtyServer]:
    """A virtual arm (in-memory joints, manual stepping) served on a pty in a thread."""
    arm = VirtualArm(spec)
    with PtyServer(VirtualBus(arm)) as server:
        yield server


@pytest.fixture
def terminal() -> Iterator[tuple[int, object]]:
    """(master fd, the slave end as a text stream): a terminal the test types into."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "r")
    yield master, stream
    stream.close()
    os.close(master)
