"""ALOHA's objects resized by object_size_scale start resting on the table, as the single-arm tasks' cubes do."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401  (registers the ids)

BODIES = {"twinarm/Aloha-TransferCube-v0": ("cube",), "twinarm/Aloha-Insertion-v0": ("peg", "socket")}


@pytest.mark.parametrize("env_id", sorted(BODIES))
def test_resized_objects_start_on_the_table(env_id: str) -> None:
    """They were placed at the nominal rest height: a grown object started up to 3 mm inside the table, a shrunk
    one up to 3.5 mm in the air (and Insertion's 'lifted' term read 1 at reset)."""
    env = gym.make(env_id, obs_type="state", randomization="object-size")
    u = env.unwrapped
    m, d = u.physics.model, u.physics.data
    table = m.geom("table").id
    for seed in range(4):
        env.reset(seed=seed)
        for body in BODIES[env_id]:
            b = m.body(body).id
            geoms = range(m.body_geomadr[b], m.body_geomadr[b] + m.body_geomnum[b])
            bottom = min(d.geom_xpos[g][2] - m.geom_size[g][2] for g in geoms)  # upright boxes
            top_of_table = d.geom_xpos[table][2] + m.geom_size[table][2]
            assert bottom == pytest.approx(top_of_table, abs=1e-6), (seed, body)
        dists = [d.contact.dist[i] for i in range(d.ncon)]
        assert min(dists, default=0.0) > -1e-6  # nothing starts inside anything
    env.close()


def test_nominal_objects_rest_where_they_always_did() -> None:
    env = gym.make("twinarm/Aloha-Insertion-v0", obs_type="state")
    obs, _ = env.reset(seed=0)
    from twinarm.envs.tasks.insertion import PEG_Z, SOCKET_Z

    assert obs["environment_state"][2] == np.float32(PEG_Z) and obs["environment_state"][9] == np.float32(SOCKET_Z)
    env.close()
