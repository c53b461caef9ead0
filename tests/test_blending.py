"""The kinematics of editing on small synthetic motions: seams, root paths, key poses, joint holding."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import synthetic_dance
from e3d2_core import blending, constraints
from e3d2_core.metrics import smoothness
from e3d2_core.skeleton import default_skeleton, forward_kinematics


def track(seed=0, frames=120, batch=1):
    poses, trans = synthetic_dance(batch, frames, seed=seed)
    return blending.to_track(poses, trans)


def test_smootherstep_and_spring_have_the_promised_ends():
    x = np.linspace(0, 1, 1001)
    s = blending.smootherstep(x)
    assert s[0] == 0 and s[-1] == 1 and np.all(np.diff(s) >= 0)
    slope = np.gradient(s, x)
    assert abs(slope[0]) < 1e-5 and abs(slope[-1]) < 1e-5
    x0, v0 = np.array([[0.3, -0.2]]), np.array([[0.05, 0.01]])
    values = blending.spring(x0, v0, np.array([0.0, 1e-4, 60.0]), rate=0.1)
    np.testing.assert_allclose(values[0, 0], x0[0])
    np.testing.assert_allclose((values[0, 1] - values[0, 0]) / 1e-4, v0[0], rtol=1e-3)
    assert np.abs(values[0, 2]).max() < 0.02 * np.abs(x0).max() + 0.02 * np.abs(v0).max() * 10


def test_tracks_round_trip_and_are_continuous():
    poses, trans = synthetic_dance(2, 50)
    quats, t = blending.to_track(poses, trans)
    assert np.all(np.sum(quats[:, 1:] * quats[:, :-1], -1) > 0)
    back, t2 = blending.from_track(quats, t)
    np.testing.assert_allclose(forward_kinematics(back, t2), forward_kinematics(poses, trans), atol=1e-5)


def test_align_start_matches_heading_and_floor_position():
    q, t = track(1, batch=2)
    kept_q, kept_t = track(2)
    q2, t2 = blending.align_start(q, t, 30, kept_q[0, 10, 0], kept_t[0, 10])
    np.testing.assert_allclose(blending.heading(q2[:, 30, 0]), blending.heading(kept_q[0, 10, 0]), atol=1e-9)
    np.testing.assert_allclose(t2[:, 30, [0, 2]], np.broadcast_to(kept_t[0, 10, [0, 2]], (2, 2)), atol=1e-9)
    np.testing.assert_allclose(t2[..., 1], t[..., 1])                       # heights kept
    # a rigid move: distances on the floor between frames are unchanged
    np.testing.assert_allclose(np.linalg.norm(np.diff(t2[..., [0, 2]], axis=1), axis=-1),
                               np.linalg.norm(np.diff(t[..., [0, 2]], axis=1), axis=-1), atol=1e-9)


def test_inertialize_continues_position_and_velocity():
    """A new motion standing still after a kept motion moving at 1 m/s: the join keeps moving at 1 m/s."""
    frames, fps = 60, 60.0
    q = np.tile(blending.quat_exp(np.zeros(3)), (1, frames, 24, 1))
    new_t = np.zeros((1, frames, 3))
    kept_t = np.array([[-2 / fps, 0, 0], [-1 / fps, 0, 0]])                 # 1 m/s along x, at x = -1/60 last
    kept_q = q[0, :2]
    out_q, out_t = blending.inertialize(q, new_t, kept_q, kept_t, 10, rate=6.0 / fps)
    path = np.concatenate([kept_t[:, 0], out_t[0, :, 0]])
    speed = np.diff(path) * fps
    assert speed[0] == pytest.approx(1.0) and speed[1] == pytest.approx(1.0, abs=0.2)   # no jump in velocity
    assert abs(out_t[0, -1, 0]) < 0.02                                       # and the offset has died out
    np.testing.assert_allclose(out_q, q[:, 10:])


def test_meet_root_arrives_exactly_and_leaves_the_start_alone():
    q, t = track(3, batch=2)
    target_q, target_t = track(4)
    end = 90
    q2, t2 = blending.meet_root(q, t, end, target_q[0, 0, 0], target_t[0, 0])
    np.testing.assert_allclose(blending.heading(q2[:, end, 0]), blending.heading(target_q[0, 0, 0]), atol=1e-9)
    np.testing.assert_allclose(t2[:, end, [0, 2]], np.broadcast_to(target_t[0, 0, [0, 2]], (2, 2)), atol=1e-9)
    np.testing.assert_allclose(t2[:, 0], t[:, 0], atol=1e-12)
    np.testing.assert_allclose(q2[:, :, 1:], q[:, :, 1:])                   # only the root moves


def test_reach_pose_meets_the_pose_exactly_at_its_frame():
    q, t = track(5, batch=2)
    pose_q, pose_t = track(6)
    q2, t2 = blending.reach_pose(q, t, 50, pose_q[0, 7], pose_t[0, 7], 30, 30)
    dots = np.abs(np.sum(q2[:, 50] * pose_q[0, 7], -1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-9)
    np.testing.assert_allclose(t2[:, 50], np.broadcast_to(pose_t[0, 7], (2, 3)), atol=1e-12)
    np.testing.assert_allclose(q2[:, :20], q[:, :20]) and np.testing.assert_allclose(q2[:, 81:], q[:, 81:])
    # without a position: the take keeps its heading and place, the pose is met relative to the body
    q3, t3 = blending.reach_pose(q, t, 50, pose_q[0, 7], None, 30, 30)
    np.testing.assert_allclose(t3, t)
    np.testing.assert_allclose(blending.heading(q3[:, 50, 0]), blending.heading(q[:, 50, 0]), atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(q3[:, 50, 1:] * pose_q[0, 7, 1:], -1)), 1.0, atol=1e-9)


def test_crossfade_goes_from_new_to_kept():
    q, t = track(7)
    kq, kt = track(8)
    w = blending.smootherstep(np.arange(1, 31) / 31)
    fq, ft = blending.crossfade(q[:, :30], t[:, :30], kq[0, :30], kt[0, :30], w)
    assert np.abs(np.abs(np.sum(fq[0, 0] * q[0, 0], -1)) - 1).max() < 1e-3
    assert np.abs(np.abs(np.sum(fq[0, -1] * kq[0, 29], -1)) - 1).max() < 1e-5


def test_joint_names_and_aliases():
    skeleton = default_skeleton()
    assert constraints.kept_joints(["feet"], skeleton) == (7, 8, 10, 11)
    assert constraints.kept_joints(["root", "Head", "hands"], skeleton) == (0, 15, 20, 21, 22, 23)
    assert constraints.chain_joints((10,), skeleton) == (1, 4, 7)
    with pytest.raises(Exception, match="unknown joint to keep"):
        constraints.kept_joints(["tail"], skeleton)


def test_snap_joints_puts_reachable_joints_exactly_and_unreachable_ones_as_close_as_a_straight_limb():
    skeleton = default_skeleton()
    poses, trans = synthetic_dance(1, 40, seed=3)
    other = poses.copy()
    moved = [1, 2, 4, 5, 7, 8, 12, 16, 18]               # hips, knees, ankles, neck, left shoulder and elbow
    other[:, :, moved] = synthetic_dance(1, 40, seed=4)[0][:, :, moved]
    targets = forward_kinematics(other[0], trans[0])     # every chain's base where it was: always reachable
    keep = constraints.kept_joints(["feet", "left_wrist", "head"], skeleton)
    snapped = constraints.snap_joints(poses[0], trans[0], targets, keep, skeleton)
    error = np.linalg.norm(forward_kinematics(snapped, trans[0])[:, list(keep)] - targets[:, list(keep)], axis=-1)
    assert error.max() < 1e-6
    np.testing.assert_allclose(snapped[:, 0], poses[0, :, 0], atol=1e-6)     # the pelvis is never turned
    far = targets.copy()
    far[:, 7] += np.array([0.0, -1.0, 0.0])                                   # a metre below the left ankle
    straight = constraints.snap_joints(poses[0], trans[0], far, (7,), skeleton)
    got = forward_kinematics(straight, trans[0])
    leg = np.linalg.norm(got[:, 7] - got[:, 1], axis=-1)
    full = skeleton.bone_lengths()[4] + skeleton.bone_lengths()[7]
    np.testing.assert_allclose(leg, full, atol=1e-4)


def test_hold_joints_is_close_and_continuous_with_its_surroundings():
    skeleton = default_skeleton()
    poses, trans = synthetic_dance(2, 60, seed=5)
    targets = forward_kinematics(synthetic_dance(1, 60, seed=6)[0][0], trans[0])
    keep = constraints.kept_joints(["left_ankle", "right_wrist"], skeleton)
    held, moved = constraints.hold_joints(poses, trans, targets, keep, skeleton, root_fixed=True)
    np.testing.assert_allclose(moved, trans)
    error = np.linalg.norm(forward_kinematics(held, moved)[:, :, list(keep)] - targets[None, :, list(keep)], axis=-1)
    assert np.median(error) < 0.02
    assert np.abs(held[:, :, [15, 12]] - poses[:, :, [15, 12]]).max() < 1e-6   # joints off the chains untouched


def test_seam_measures_the_values_across_it():
    joints = np.zeros((10, 24, 3))
    joints[5:, 3, 0] = 0.1                                                   # joint 3 jumps 10 cm at frame 5
    seam = smoothness.seam(joints, 60.0, 5)
    assert seam["speed"] == pytest.approx(6.0) and seam["acceleration"] == pytest.approx(0.1 * 3600)
    assert seam["root_step"] == 0.0
    assert smoothness.seam(joints, 60.0, 3)["speed"] == 0.0
    with pytest.raises(ValueError):
        smoothness.seam(joints, 60.0, 0)
    ref = smoothness.percentiles([(joints, 60.0)], 100)
    assert ref["speed"] == pytest.approx(6.0) and not math.isnan(ref["acceleration"])


def test_septic_step_is_flat_to_the_third_derivative_at_both_ends():
    x = np.linspace(0, 1, 2001)
    s = blending.septic_step(x)
    assert s[0] == 0 and s[-1] == 1 and np.all(np.diff(s) >= 0)
    np.testing.assert_allclose(s + s[::-1], 1.0, atol=1e-12)                  # symmetric
    h = 1e-3
    for end in (0.0, 1.0):                                                      # 1 - w ≈ 35 (1 - x)^4
        near = blending.septic_step(np.array([end + (h if end == 0 else -h)]))[0]
        assert abs(near - end) < 40 * h ** 4
    # flatter than smootherstep where it ends, which is what the frames next to a seam see
    assert 1 - blending.septic_step(30 / 31) < 0.3 * (1 - blending.smootherstep(30 / 31))


def test_carry_on_continues_position_velocity_and_acceleration_then_comes_to_rest():
    """A joint turning with constant angular acceleration, a pelvis on a parabola: the carried-on frames
    continue both exactly across the last frame (second differences equal), then slow down to rest."""
    fps, frames = 60.0, 12
    t = np.arange(frames)
    angle = 0.02 * t + 0.001 * t ** 2                                           # rad, about a tilted axis
    axis = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])
    quats = np.tile(blending.quat_exp(np.zeros(3)), (frames, 24, 1))
    quats[:, 5] = blending.quat_exp(angle[:, None] * axis)
    trans = np.stack([0.01 * t, 0.9 + 0.002 * t ** 2, -0.005 * t], -1).astype(np.float64)
    q, p = blending.carry_on(quats[-3:], trans[-3:], 120, fps)
    assert q.shape == (120, 24, 4) and p.shape == (120, 3)
    joined = np.concatenate([angle[-3:], [2 * np.arctan2(np.linalg.norm(q[0, 5, 1:]), q[0, 5, 0])]])
    np.testing.assert_allclose(np.diff(joined, 2), 0.002, atol=1e-9)            # the acceleration goes on
    path = np.concatenate([trans[-3:], p[:1]])
    np.testing.assert_allclose(np.diff(path, 2, axis=0), [[0, 0.004, 0], [0, 0.004, 0]], atol=1e-12)
    np.testing.assert_allclose(q[:, 0], np.broadcast_to(quats[-1, 0], (120, 4)), atol=1e-12)   # still joints stay
    step = np.linalg.norm(np.diff(p, axis=0), axis=-1)
    assert step[-1] < 0.01 * step[0]                                            # at rest after 2 s
    one_q, one_p = blending.carry_on(quats[-1:], trans[-1:], 5, fps)            # one frame: nothing to carry
    np.testing.assert_allclose(one_p, np.broadcast_to(trans[-1], (5, 3)))


def spinning(frames, rate):
    """(1, T, 24, 4) a body spinning about +Y at ``rate`` rad per frame, standing still on the floor."""
    q = np.tile(blending.quat_exp(np.zeros(3)), (1, frames, 24, 1))
    q[0, :, 0] = blending.yaw_quat(rate * np.arange(frames))
    return blending.make_continuous(q), np.tile([0.0, 0.9, 0.0], (1, frames, 1))


def test_unwrap_keeps_a_growing_rotation_continuous_past_a_half_turn():
    angle = np.linspace(0, 3 * np.pi, 50)
    axis = np.array([0.0, 0.6, 0.8])
    raw = blending.quat_log(blending.quat_exp(angle[:, None] * axis))          # wraps at π
    assert np.linalg.norm(np.diff(raw, axis=0), axis=-1).max() > 1.0
    unwrapped = blending.unwrap_rotation_vectors(raw, axis=0)
    np.testing.assert_allclose(unwrapped, angle[:, None] * axis, atol=1e-9)


def test_crossfade_does_not_flip_when_one_motion_spins_away_from_the_other():
    """A still body blended into one spinning a full turn: the old per-frame slerp jumped where the two
    were half a turn apart; the result now turns continuously."""
    frames = 60
    spin_q, spin_t = spinning(frames, 2 * np.pi / frames)
    still_q, still_t = spinning(frames, 0.0)
    w = blending.smootherstep(np.arange(frames) / (frames - 1))
    q, _ = blending.crossfade(spin_q, spin_t, still_q[0], still_t[0], w)
    turn = 2 * np.arccos(np.abs(np.sum(q[0, 1:, 0] * q[0, :-1, 0], -1)).clip(0, 1))
    assert turn.max() < 0.5                                                     # a jump would be ~1 rad or more


def test_blend_turns_and_travels_no_faster_than_either_motion():
    """The floor motion is blended in velocity: easing from a still body into one spinning and walking away,
    the result never spins or walks faster than the new motion, and once the weight is 0 it is the new motion
    moved rigidly (a blend of positions has to catch up, up to about twice as fast)."""
    frames, ease, rate = 90, 30, 0.15
    q, t = spinning(frames, rate)
    t[0, :, 0] = 0.02 * np.arange(frames)                                       # walking at 1.2 m/s
    still_q, still_t = spinning(ease, 0.0)
    weight = 1.0 - blending.septic_step(np.arange(1, ease + 1) / (ease + 1))
    out_q, out_t = blending.blend(q, t, still_q[0], still_t[0], weight, still_q[0, 0, 0], still_t[0, 0])
    turn = 2 * np.arccos(np.abs(np.sum(out_q[0, 1:, 0] * out_q[0, :-1, 0], -1)).clip(0, 1))
    steps = np.linalg.norm(np.diff(out_t[0], axis=0), axis=-1)
    assert turn.max() <= rate + 1e-9 and steps.max() <= 0.02 + 1e-9
    assert turn[0] < 0.01 * rate and steps[0] < 0.01 * 0.02                    # it starts as the still body
    np.testing.assert_allclose(turn[ease + 1:], rate, atol=1e-9)                # then moves as the new one
    np.testing.assert_allclose(steps[ease + 1:], 0.02, atol=1e-9)
    np.testing.assert_allclose(out_q[0, ease:, 1:], q[0, ease:, 1:], atol=1e-12)   # the pose is the new one
    cross_q, _ = blending.crossfade(q[:, :ease], t[:, :ease], still_q[0], still_t[0], weight)
    cross_turn = 2 * np.arccos(np.abs(np.sum(cross_q[0, 1:, 0] * cross_q[0, :-1, 0], -1)).clip(0, 1))
    assert cross_turn.max() > 1.5 * rate                                        # what a position blend does
