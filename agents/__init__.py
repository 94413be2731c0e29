"""Policies (ACT, Diffusion Policy, TD-MPC), normalization, training and evaluation."""
