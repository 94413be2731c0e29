"""Policies (ACT, Diffusion Policy, TD-MPC), normalization, training and evaluation.

Units: policies train and act in dataset (LeRobot) units, i.e. degrees and gripper 0..100 for SO arms,
exactly what `meta/stats.json` describes. The one conversion to the env's SI units happens at the env
boundary in `agents.env_io.EnvAdapter` through `ArmSpec.to_lerobot` / `from_lerobot`, so a checkpoint
trained on `twinarm/SO101-PickCube-v0` data runs on `twinarm/SO101-PickCube-Real-v0` unchanged.

    from twinarm.agents.policy import Policy
    policy = Policy.from_pretrained("outputs/train/checkpoints/00100000/pretrained_model")
"""
