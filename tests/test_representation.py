import math

import numpy as np
import torch

from conftest import synthetic_dance
from e3d2_core import rotations
from e3d2_core.models import representation as rep
from e3d2_core.skeleton import forward_kinematics_torch


def _dance64(frames=180):
    poses, trans = synthetic_dance(2, frames)
    return torch.from_numpy(poses).double(), torch.from_numpy(trans).double()


def test_dimensions_and_channel_meaning():
    poses, trans = _dance64()
    lower, upper = rep.encode(poses, trans, 60.0)
    assert lower.shape == (2, 180, rep.LOWER_DIM) and upper.shape == (2, 180, rep.UPPER_DIM)
    assert (rep.LOWER_DIM, rep.UPPER_DIM, rep.LOWER_POSE_DIM) == (58, 90, 54)
    assert torch.allclose(lower[..., 56], trans[..., 1])                       # height
    # floor speed is frame-invariant: |vel| equals the world-frame floor speed in m/s
    step = (trans[:, 1:] - trans[:, :-1])[..., [0, 2]] * 60.0
    assert torch.allclose(lower[:, :-1, 54:56].norm(dim=-1), step.norm(dim=-1), atol=1e-9)
    # the last frame copies the velocity and yaw rate of the one before
    assert torch.equal(lower[:, -1, [54, 55, 57]], lower[:, -2, [54, 55, 57]])
    # the stored orientation has no heading of its own
    orient = rotations.rot6d_to_matrix(lower[..., :6])
    assert rep.heading(orient).abs().max() < 1e-9
    # yaw rate integrates to the heading change (poses[...,0,1] turns about +Y)
    psi = rep.heading(rotations.axis_angle_to_matrix(poses[:, :, 0]))
    turned = torch.remainder(psi[:, -1] - psi[:, 0] - lower[:, :-1, 57].sum(1) / 60.0 + math.pi, 2 * math.pi) - math.pi
    assert turned.abs().max() < 1e-9


def test_features_motion_features_round_trip_is_exact():
    poses, trans = _dance64()
    lower, upper = rep.encode(poses, trans, 60.0)
    poses2, trans2 = rep.decode(lower, upper, 60.0)              # starts at the origin, heading 0
    lower2, upper2 = rep.encode(poses2, trans2, 60.0)
    assert (lower2 - lower).abs().max() < 1e-10
    assert (upper2 - upper).abs().max() < 1e-10


def test_motion_features_motion_round_trip_is_exact():
    poses, trans = _dance64()
    lower, upper = rep.encode(poses, trans, 60.0)
    psi0 = rep.heading(rotations.axis_angle_to_matrix(poses[:, 0, 0]))
    poses2, trans2 = rep.decode(lower, upper, 60.0, init_xz=trans[:, 0, [0, 2]], init_heading=psi0)
    assert (trans2 - trans).abs().max() < 1e-10
    assert (forward_kinematics_torch(poses2, trans2) - forward_kinematics_torch(poses, trans)).abs().max() < 1e-10


def test_any_network_output_decodes_to_a_valid_motion():
    torch.manual_seed(0)
    lower, upper = torch.randn(3, 40, 58), torch.randn(3, 40, 90)
    poses, trans = rep.decode(lower, upper, 60.0)
    assert poses.shape == (3, 40, 24, 3) and trans.shape == (3, 40, 3)
    assert torch.isfinite(poses).all() and torch.isfinite(trans).all()
    mats = rotations.axis_angle_to_matrix(poses.double())
    eye = torch.eye(3, dtype=torch.float64).expand_as(mats)
    assert (mats @ mats.transpose(-1, -2) - eye).abs().max() < 1e-4


def test_single_frame_motion_has_zero_velocity():
    poses, trans = synthetic_dance(1, 1)
    lower, _ = rep.encode(torch.from_numpy(poses), torch.from_numpy(trans), 60.0)
    assert torch.equal(lower[..., [54, 55, 57]], torch.zeros(1, 1, 3))
    assert np.isclose(float(lower[0, 0, 56]), trans[0, 0, 1])
