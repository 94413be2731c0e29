"""MuJoCo Gymnasium envs built from the arm specs: physics, tasks, rendering and scripted experts."""
