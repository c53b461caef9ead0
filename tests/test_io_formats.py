"""Importers for AIST++ .pkl, Bailando .npy, EDGE .pkl, joint-position files and Motion .npz.

The pickled formats are written here from forward kinematics of known poses, so each import must give those
poses' joints back (up to the one vertical shift that puts the feet on the floor).
"""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from e3d2_core.errors import E3D2Error
from e3d2_core.io import load_joint_track, load_motion_file
from e3d2_core.io.floor import sole_heights
from e3d2_core.motion import Motion, from_z_up, to_z_up
from e3d2_core.skeleton import Skeleton, default_skeleton, forward_kinematics

DATA = Path(__file__).parent / "data"
CSV = DATA / "aistpp" / "true_gBR_sBM_cAll_d04_mBR0_ch02_slice0.csv"
Z_UP = Rotation.from_euler("x", 90, degrees=True)      # Y-up -> Z-up, i.e. the inverse of (x,y,z)->(x,z,-y)


def dance(frames=30, seed=0):
    rng = np.random.default_rng(seed)
    poses = rng.normal(scale=0.25, size=(frames, 24, 3))
    poses[:, 0] = rng.normal(scale=0.3, size=(frames, 3))
    trans = np.column_stack([np.linspace(0, 1, frames), 0.95 + 0.03 * rng.normal(size=frames),
                             np.linspace(0, -0.5, frames)])
    return poses, trans


def assert_same_up_to_floor(got, want, atol=1e-5):
    offset = np.asarray(got, dtype=np.float64) - want
    np.testing.assert_allclose(offset[..., [0, 2]], 0.0, atol=atol)
    np.testing.assert_allclose(offset[..., 1], offset[0, 0, 1], atol=atol)
    assert abs(np.percentile(sole_heights(np.asarray(got, dtype=np.float64)), 5)) < 1e-5   # floor at y = 0


class Boom:
    """A pickle that would create a file if unpickled with the standard unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ------------------------------------------------------------------------------------------------ AIST++
def test_aistpp_pkl_round_trip(tmp_path):
    poses, trans = dance(seed=1)
    scaling = 93.7
    path = tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"smpl_poses": poses.reshape(-1, 72), "smpl_trans": trans * scaling,
                     "smpl_scaling": np.array([scaling])}, handle)
    motion = load_motion_file(path)
    assert motion.fps == 60.0 and motion.meta["format"] == "aistpp" and motion.meta["source"] == path.name
    np.testing.assert_allclose(motion.poses, poses, atol=1e-6)
    assert_same_up_to_floor(motion.joints(), forward_kinematics(poses, trans))
    joints, fps = load_joint_track(path)
    assert fps == 60.0
    np.testing.assert_allclose(joints, motion.joints(), atol=1e-5)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"smpl_poses": Boom(marker)}))
    for fmt in (None, "edge"):
        with pytest.raises(E3D2Error, match="refusing to load .*system"):
            load_motion_file(path, fmt=fmt)
    npy = tmp_path / "evil.npy"
    np.save(npy, np.array({"pred_position": Boom(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(E3D2Error, match="refusing to load"):
        load_motion_file(npy, fmt="bailando")
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (pickle.dumps({"smpl_poses": np.zeros((4, 72))})[:-9], "truncated or malformed"),
    (pickle.dumps([1, 2, 3]), "expected a dict"),
    (pickle.dumps({"smpl_poses": np.zeros((4, 72)), "smpl_trans": np.zeros((4, 3))}), "missing 'smpl_scaling'"),
    (pickle.dumps({"smpl_poses": np.zeros((4, 70)), "smpl_trans": np.zeros((4, 3)), "smpl_scaling": [1.0]}),
     r"\(T, 72\)"),
    (pickle.dumps({"smpl_poses": np.zeros((4, 72)), "smpl_trans": np.zeros((5, 3)), "smpl_scaling": [1.0]}),
     r"\(4, 3\)"),
    (pickle.dumps({"smpl_poses": np.full((4, 72), np.nan), "smpl_trans": np.zeros((4, 3)),
                   "smpl_scaling": [1.0]}), "NaN"),
    (pickle.dumps({"smpl_poses": np.zeros((4, 72)), "smpl_trans": np.zeros((4, 3)), "smpl_scaling": [0.0]}),
     "positive"),
])
def test_bad_aistpp_pkl(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(E3D2Error, match=message) as info:
        load_motion_file(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------------------ Bailando / EDGE
def test_bailando_npy_round_trip_and_needs_its_format(tmp_path):
    poses, trans = dance(seed=2)
    joints = forward_kinematics(poses, trans)
    path = tmp_path / "bailando_out.npy"
    np.save(path, {"pred_position": joints.reshape(-1, 72)}, allow_pickle=True)
    with pytest.raises(E3D2Error, match="--format bailando"):
        load_motion_file(path, fps=60)                              # a plain .npy read never unpickles
    motion = load_motion_file(path, fmt="bailando")
    assert motion.fps == 60.0
    assert_same_up_to_floor(motion.joints(), joints)
    track, fps = load_joint_track(path, fmt="bailando")
    assert fps == 60.0
    assert_same_up_to_floor(track, joints)


def test_edge_pkl_with_rotations_round_trip(tmp_path):
    poses, trans = dance(seed=3)
    edge_poses = poses.copy()
    edge_poses[:, 0] = (Z_UP * Rotation.from_rotvec(poses[:, 0])).as_rotvec()   # EDGE's Z-up root
    path = tmp_path / "edge_out.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"smpl_poses": edge_poses.reshape(-1, 72), "smpl_trans": to_z_up(trans),
                     "full_pose": to_z_up(forward_kinematics(poses, trans))}, handle)
    motion = load_motion_file(path, fmt="edge")
    assert motion.fps == 30.0 and motion.meta["format"] == "edge"
    np.testing.assert_allclose(motion.poses[:, 1:], poses[:, 1:], atol=1e-6)
    assert_same_up_to_floor(motion.joints(), forward_kinematics(poses, trans))


def test_edge_pkl_positions_only_round_trip(tmp_path):
    poses, trans = dance(seed=4)
    joints = forward_kinematics(poses, trans)
    path = tmp_path / "edge_positions.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"full_pose": to_z_up(joints).astype(np.float32)}, handle)
    motion = load_motion_file(path, fmt="edge")
    assert_same_up_to_floor(motion.joints(), joints, atol=2e-5)
    track, fps = load_joint_track(path, fmt="edge")
    assert fps == 30.0
    assert_same_up_to_floor(track, joints, atol=2e-5)


# ------------------------------------------------------------------------------------------------ joint files
def test_real_csv_imports_with_fps_and_z_up():
    source = from_z_up(np.loadtxt(CSV, delimiter=",").reshape(-1, 24, 3))
    motion = load_motion_file(CSV, fps=30, up="z")
    assert motion.num_frames == 150 and motion.fps == 30.0 and motion.meta["source_fps"] == 30.0
    assert_same_up_to_floor(motion.joints(), source, atol=2e-5)
    joints, fps = load_joint_track(CSV, up="z")
    assert fps is None
    assert_same_up_to_floor(joints, source, atol=1e-9)
    with pytest.raises(E3D2Error, match="--fps"):
        load_motion_file(CSV, up="z")


def test_npy_joint_track_both_shapes(tmp_path):
    poses, trans = dance(seed=5)
    joints = forward_kinematics(poses, trans)
    for shape in ((-1, 72), (-1, 24, 3)):
        path = tmp_path / f"track{len(shape)}.npy"
        np.save(path, joints.reshape(shape))
        motion = load_motion_file(path, fps=25)
        assert motion.fps == 25.0
        assert_same_up_to_floor(motion.joints(), joints)


@pytest.mark.parametrize("array, message", [
    (np.zeros((10, 71)), r"\(T, 72\) or \(T, 24, 3\)"),
    (np.full((10, 72), np.nan), "NaN"),
    (np.zeros((0, 72)), "no frames"),
])
def test_bad_joint_arrays(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(E3D2Error, match=message):
        load_motion_file(path, fps=30)


def test_centimetre_joints_are_refused(tmp_path):
    path = tmp_path / "cm.npy"
    np.save(path, forward_kinematics(*dance(seed=6)) * 100.0)
    with pytest.raises(E3D2Error, match="metres"):
        load_joint_track(path)


# ------------------------------------------------------------------------------------------------ Motion / skeleton
def test_motion_npz_import_keeps_the_motion(tmp_path):
    poses, trans = dance(seed=7)
    path = Motion(poses, trans, 50.0, {"seed": 3}).save(tmp_path / "m.npz")
    motion = load_motion_file(path)
    np.testing.assert_array_equal(motion.poses, poses.astype(np.float32))
    np.testing.assert_array_equal(motion.trans, trans.astype(np.float32))
    assert motion.fps == 50.0 and motion.meta["seed"] == 3 and motion.meta["format"] == "motion"


def test_motion_joints_use_the_skeleton_in_meta():
    base = default_skeleton()
    tall = Skeleton(base.names, base.parents, base.offsets * 1.1, source="test")
    poses, trans = dance(frames=5, seed=8)
    motion = Motion(poses, trans, 30.0, {"skeleton": tall.to_dict()})
    np.testing.assert_allclose(motion.joints(), forward_kinematics(poses, trans, tall), atol=1e-5)
    np.testing.assert_allclose(motion.joints(base), forward_kinematics(poses, trans, base), atol=1e-5)
    assert Motion(poses, trans, 30.0).skeleton is base


def test_import_onto_another_skeleton_stores_it(tmp_path):
    base = default_skeleton()
    rng = np.random.default_rng(9)
    other = Skeleton(base.names, base.parents, base.offsets * rng.uniform(0.9, 1.1, (24, 1)), source="other")
    motion = load_motion_file(CSV, fps=30, up="z", skeleton=other)
    assert Skeleton.from_dict(motion.meta["skeleton"]).offsets.tolist() == other.offsets.tolist()
    saved = Motion.load(motion.save(tmp_path / "other.npz"))
    lengths = np.linalg.norm(np.diff(saved.joints()[:, [1, 4]], axis=1)[:, 0], axis=-1)
    np.testing.assert_allclose(lengths, other.bone_lengths()[4], atol=1e-5)     # left hip -> knee is other's
