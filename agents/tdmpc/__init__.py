"""TD-MPC (Hansen et al., 2022) with LeRobot's FOWM-style losses: a latent world model planned with CEM."""
