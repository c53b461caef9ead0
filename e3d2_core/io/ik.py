"""Joint positions -> SMPL local rotations by inverse kinematics (vectorised over frames).

Walks the tree from the pelvis. Each joint gets the world rotation that points its rest bone(s) at the target
bone direction(s):

* one child: the smallest rotation ("swing") that turns the bone onto the target direction, starting from a
  reference orientation -- the parent's (no twist relative to the parent) or a given one (e.g. a BVH joint's,
  which carries the twist that positions cannot show);
* several children (pelvis, spine3): the rotation that best aligns all rest bone directions with the target
  directions (Kabsch / SVD);
* no children (head, feet, hands): the reference orientation (the parent's, or a given one).

Directions, not lengths, are matched, so targets from a skeleton with other proportions still give a clean pose
on ours; targets from the same skeleton come back exactly. An optional short torch refinement then lowers the
forward-kinematics position error directly.
"""
from __future__ import annotations

import numpy as np

from e3d2_core import rotations
from e3d2_core.skeleton import NUM_JOINTS, Skeleton, default_skeleton, forward_kinematics

_TINY = 1e-9


def inverse_kinematics(targets: np.ndarray, skeleton: Skeleton | None = None, *, root_rotation=None,
                       reference_rotations: dict | None = None, refine_steps: int = 0):
    """SMPL poses whose forward kinematics follow ``targets``.

    Args:
        targets: (T, 24, 3) joint positions in metres, Y up, SMPL joint order.
        skeleton: the skeleton to pose (bundled SMPL when None).
        root_rotation: optional (T, 3, 3) world rotation of the pelvis (used instead of fitting it).
        reference_rotations: optional {joint index: (T, 3, 3) world rotation} giving the twist of single-child
            joints and the orientation of leaf joints; joints not listed follow their parent.
        refine_steps: Adam steps of torch refinement of the position error (0: none).
    Returns:
        poses (T, 24, 3) float64 axis-angle, trans (T, 3) float64 metres.
    """
    skeleton = skeleton or default_skeleton()
    targets = np.asarray(targets, dtype=np.float64)
    frames = targets.shape[0]
    reference_rotations = reference_rotations or {}
    children = [[c for c in range(NUM_JOINTS) if skeleton.parents[c] == j] for j in range(NUM_JOINTS)]
    identity = np.broadcast_to(np.eye(3), (frames, 3, 3))

    world = []
    for j in range(NUM_JOINTS):
        parent = skeleton.parents[j]
        base = reference_rotations.get(j, identity if parent < 0 else world[parent])
        base = np.asarray(base, dtype=np.float64)
        rest = skeleton.offsets[children[j]]                               # (C, 3)
        wanted = targets[:, children[j]] - targets[:, j:j + 1]             # (T, C, 3)
        if j == 0 and root_rotation is not None:
            rotation = np.asarray(root_rotation, dtype=np.float64)
        elif len(children[j]) >= 2:
            rotation = kabsch_rotation(rest, wanted)
        elif len(children[j]) == 1:
            start = base @ rest[0]
            rotation = swing_rotation(start, wanted[:, 0]) @ base
        else:
            rotation = base
        world.append(rotation)

    world = np.stack(world, axis=1)                                        # (T, 24, 3, 3)
    local = np.empty_like(world)
    local[:, 0] = world[:, 0]
    for j in range(1, NUM_JOINTS):
        local[:, j] = np.swapaxes(world[:, skeleton.parents[j]], -1, -2) @ world[:, j]
    poses = rotations.matrix_to_axis_angle(local)
    trans = targets[:, 0] - skeleton.offsets[0]
    if refine_steps > 0:
        poses, trans = refine_ik(poses, trans, targets, skeleton, steps=refine_steps)
    return poses, trans


def swing_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3, 3) smallest rotations turning direction ``a`` (T, 3) onto direction ``b`` (T, 3).

    Zero-length ``b`` gives the identity; opposite directions turn by pi about an axis perpendicular to ``a``.
    """
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), np.shape(b))
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    valid = (na[..., 0] > _TINY) & (nb[..., 0] > _TINY)
    ua, ub = a / np.maximum(na, _TINY), b / np.maximum(nb, _TINY)
    cos = np.sum(ua * ub, axis=-1)
    axis = np.cross(ua, ub)
    opposite = cos < -1.0 + 1e-9
    # For opposite directions any axis perpendicular to a works: pick a x e_k with the least-aligned e_k.
    helper = np.eye(3)[np.argmin(np.abs(ua), axis=-1)]
    perp = np.cross(ua, helper)
    perp /= np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), _TINY)
    # Rodrigues with v = a x b: R = I + [v]x + [v]x^2 / (1 + cos).
    vx = _skew(axis)
    scale = 1.0 / np.maximum(1.0 + cos, 1e-12)
    rot = np.eye(3) + vx + (vx @ vx) * scale[..., None, None]
    flip = 2.0 * perp[..., :, None] * perp[..., None, :] - np.eye(3)      # rotation by pi about perp
    rot = np.where(opposite[..., None, None], flip, rot)
    return np.where(valid[..., None, None], rot, np.eye(3))


def kabsch_rotation(rest: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation that best turns the unit rest directions (C, 3) onto the wanted directions (T, C, 3)."""
    rest_u = rest / np.maximum(np.linalg.norm(rest, axis=-1, keepdims=True), _TINY)
    wanted_u = wanted / np.maximum(np.linalg.norm(wanted, axis=-1, keepdims=True), _TINY)
    covariance = np.einsum("tci,cj->tij", wanted_u, rest_u)               # sum_c w_c r_c^T
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    correction = np.broadcast_to(np.eye(3), covariance.shape).copy()
    correction[:, 2, 2] = sign
    return u @ correction @ vt


def refine_ik(poses: np.ndarray, trans: np.ndarray, targets: np.ndarray, skeleton: Skeleton, *,
              steps: int = 50, lr: float = 0.01):
    """Lower the mean squared FK position error with Adam on 6D rotations and translation, all frames at once.

    Returns poses (T, 24, 3) axis-angle and trans (T, 3), float64; never worse than the input.
    """
    import torch

    from e3d2_core.skeleton import forward_kinematics_torch

    target_t = torch.as_tensor(targets, dtype=torch.float64)
    rot6d = torch.tensor(rotations.axis_angle_to_rot6d(np.asarray(poses, dtype=np.float64)), requires_grad=True)
    trans_t = torch.tensor(np.asarray(trans, dtype=np.float64), requires_grad=True)
    optimiser = torch.optim.Adam([rot6d, trans_t], lr=lr)

    def error():
        local = rotations.rot6d_to_matrix(rot6d)
        return (forward_kinematics_torch(local, trans_t, skeleton, rotation_matrices=True) - target_t) \
            .square().sum(-1).mean()

    with torch.no_grad():
        start = float(error())
    for _ in range(steps):
        optimiser.zero_grad()
        loss = error()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        end = float(error())
    if end >= start:
        return np.asarray(poses, dtype=np.float64), np.asarray(trans, dtype=np.float64)
    with torch.no_grad():
        refined = rotations.matrix_to_axis_angle(rotations.rot6d_to_matrix(rot6d)).numpy()
        return refined, trans_t.detach().numpy().copy()


def position_error(poses: np.ndarray, trans: np.ndarray, targets: np.ndarray,
                   skeleton: Skeleton | None = None) -> float:
    """Mean per-joint Euclidean distance (metres) between FK(poses, trans) and ``targets``."""
    joints = forward_kinematics(poses, trans, skeleton)
    return float(np.linalg.norm(joints - np.asarray(targets, dtype=np.float64), axis=-1).mean())


def _skew(v: np.ndarray) -> np.ndarray:
    zero = np.zeros(v.shape[:-1])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
