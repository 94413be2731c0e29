"""The hardware bridge: servo buses, calibration, cameras, teleoperation, real envs, virtual servo bus."""
