"""Damped least-squares inverse kinematics of the `tcp` site on MuJoCo's Jacobian.

Works on a private MjData (kinematics only), so planning never disturbs the simulated episode.
dm_control's `qpos_from_site_pose` is the reference it is tested against, but it ignores joint limits,
which the SO arms' wrist hits when pointing down; this solver projects every update onto the limits.
"""

from __future__ import annotations

import mujoco
import numpy as np

from twinarm.envs.physics import ArmPhysics


def down_rotation(yaw: float) -> np.ndarray:
    """Tool frame pointing straight down (fingers along world -z) with its x axis at `yaw`."""
    x = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    z = np.array([0.0, 0.0, 1.0])
    return np.column_stack([x, np.cross(z, x), z])


class TcpIK:
    """Solves arm joint angles (spec units) that put the `tcp` site at a position and orientation."""

    def __init__(self, physics: ArmPhysics, damping: float = 1e-3, rot_weight: float = 0.3):
        self.physics = physics
        self.model = physics.model
        self.data = mujoco.MjData(physics.model)
        self.site = physics.model.site("tcp").id
        grip = physics.spec.gripper_mask
        self.arm_dofs = physics.dof_adr[~grip]
        self.arm_qadr = physics.qpos_adr[~grip]
        self.lower = physics.spec.lower[~grip]
        self.upper = physics.spec.upper[~grip]
        self.damping = damping
        self.rot_weight = rot_weight
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def tcp_pose(self, arm_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: tool position and rotation matrix for arm joints `arm_q`."""
        self.data.qpos[self.arm_qadr] = arm_q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(
        self,
        arm_q0: np.ndarray,
        pos: np.ndarray,
        rot: np.ndarray | None = None,
        iters: int = 60,
        tol: float = 1e-4,
        rest: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, float]:
        """Arm joints reaching `pos` (and `rot`, weighted), starting from `arm_q0`; returns (q, pos error).

        With `rest` = (joints, per-joint weights), each step also pulls the joints toward those: where the task
        leaves joints free (a wrist at its singularity) they stay near them instead of drifting onto another branch."""
        q = np.array(arm_q0, dtype=np.float64)
        self.data.qpos[:] = self.physics.data.qpos
        err_norm = np.inf
        for _ in range(iters):
            self.data.qpos[self.arm_qadr] = q
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            x = self.data.site_xpos[self.site]
            e_pos = pos - x
            err_norm = float(np.linalg.norm(e_pos))
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            jp = self._jacp[:, self.arm_dofs]
            if rot is not None:
                cur = self.data.site_xmat[self.site].reshape(3, 3)
                e_rot = 0.5 * sum(np.cross(cur[:, i], rot[:, i]) for i in range(3))
                jac = np.vstack([jp, self.rot_weight * self._jacr[:, self.arm_dofs]])
                err = np.concatenate([e_pos, self.rot_weight * e_rot])
                if err_norm < tol and np.linalg.norm(e_rot) < 1e-3:
                    break
            else:
                jac, err = jp, e_pos
                if err_norm < tol:
                    break
            if rest is None:
                dq = jac.T @ np.linalg.solve(jac @ jac.T + self.damping * np.eye(len(err)), err)
            else:  # argmin |jac dq - err|^2 + damping |dq|^2 + sum_i weight_i (q_i + dq_i - rest_i)^2
                rest_q, weight = rest
                lhs = jac.T @ jac + np.diag(self.damping + weight)
                dq = np.linalg.solve(lhs, jac.T @ err + weight * (rest_q - q))
            q = np.clip(q + dq, self.lower, self.upper)
        return q, err_norm
