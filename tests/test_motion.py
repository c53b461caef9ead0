
import numpy as np
import pytest

from e3d2_core.errors import E3D2Error
from e3d2_core.motion import Motion, from_z_up, to_z_up


def wave_motion(frames=120, fps=60.0):
    """Arms and hips swinging sinusoidally while the body walks forward."""
    t = np.arange(frames) / fps
    poses = np.zeros((frames, 24, 3), np.float32)
    poses[:, 16, 2] = 0.8 * np.sin(2 * np.pi * t)        # left shoulder
    poses[:, 17, 2] = -0.8 * np.sin(2 * np.pi * t)       # right shoulder
    poses[:, 1, 0] = 0.5 * np.sin(2 * np.pi * 0.5 * t)   # left hip
    poses[:, 0, 1] = 0.3 * t                              # slow turn
    trans = np.stack([0.1 * t, 0.95 + 0.02 * np.sin(4 * np.pi * t), 0.5 * t], -1)
    return Motion(poses, trans, fps, {"source": "test"})


def test_save_load_round_trip(tmp_path):
    motion = wave_motion()
    path = motion.save(tmp_path / "m.npz")
    loaded = Motion.load(path)
    np.testing.assert_array_equal(loaded.poses, motion.poses)
    np.testing.assert_array_equal(loaded.trans, motion.trans)
    assert loaded.fps == 60.0 and loaded.meta == {"source": "test"}
    assert loaded.joints().shape == (120, 24, 3)


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(E3D2Error, match="no such motion file"):
        Motion.load(tmp_path / "missing.npz")
    truncated = tmp_path / "t.npz"
    wave_motion().save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(E3D2Error, match="unreadable"):
        Motion.load(truncated)
    foreign = tmp_path / "f.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(E3D2Error, match="missing fps, poses, trans"):
        Motion.load(foreign)
    nan = tmp_path / "nan.npz"
    np.savez(nan, poses=np.full((2, 24, 3), np.nan), trans=np.zeros((2, 3)), fps=30.0)
    with pytest.raises(E3D2Error, match="NaN"):
        Motion.load(nan)


def test_failed_save_keeps_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    wave_motion().save(path)
    before = path.read_bytes()
    motion = wave_motion()
    motion.meta = {"bad": object()}  # not JSON-able: save fails after opening the temp file
    with pytest.raises(TypeError):
        motion.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_resample_keeps_the_path_of_the_joints():
    motion = wave_motion(frames=121, fps=60.0)
    half = motion.resample(30.0)
    assert half.fps == 30.0 and half.num_frames == 61
    # every second frame of the original is kept exactly
    np.testing.assert_allclose(half.joints(), motion.joints()[::2], atol=1e-5)
    double = motion.resample(120.0)
    assert double.num_frames == 241
    np.testing.assert_allclose(double.joints()[::2], motion.joints(), atol=1e-5)
    # midpoints lie between their neighbours' joints (slerp, not garbage)
    mids = double.joints()[1::2]
    np.testing.assert_allclose(mids, 0.5 * (motion.joints()[:-1] + motion.joints()[1:]), atol=5e-3)


def test_trim():
    motion = wave_motion()
    assert motion.trim(10, 20).num_frames == 10
    assert motion.trim_seconds(0.5, 1.0).num_frames == 30
    with pytest.raises(E3D2Error):
        motion.trim(200)


def test_mirror_swaps_left_and_right():
    motion = wave_motion()
    mirrored = motion.mirror()
    joints, mirror_joints = motion.joints(), mirrored.joints()
    swap = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
    reflected = joints[:, swap] * np.array([-1, 1, 1])
    # SMPL's offsets are not perfectly symmetric: a few centimetres apart at most
    assert np.abs(mirror_joints - reflected).max() < 0.05
    np.testing.assert_allclose(mirrored.mirror().poses, motion.poses, atol=1e-6)


def test_in_place_removes_floor_travel():
    motion = wave_motion().in_place()
    assert np.ptp(motion.trans[:, 0]) == 0 and np.ptp(motion.trans[:, 2]) == 0
    assert np.ptp(motion.trans[:, 1]) > 0


def test_z_up_conversion_is_a_rotation():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(10, 24, 3))
    y_up = from_z_up(pts)
    np.testing.assert_allclose(to_z_up(y_up), pts)
    # a rotation keeps handedness: the triple product of three points' vectors is preserved
    a, b, c = pts[0, 1] - pts[0, 0], pts[0, 2] - pts[0, 0], pts[0, 3] - pts[0, 0]
    a2, b2, c2 = y_up[0, 1] - y_up[0, 0], y_up[0, 2] - y_up[0, 0], y_up[0, 3] - y_up[0, 0]
    assert np.isclose(np.dot(np.cross(a, b), c), np.dot(np.cross(a2, b2), c2))
    assert np.allclose(from_z_up(np.array([0.0, 0.0, 1.0])), [0, 1, 0])


def test_motion_rejects_bad_arrays():
    with pytest.raises(E3D2Error, match=r"\(T, 24, 3\)"):
        Motion(np.zeros((5, 22, 3)), np.zeros((5, 3)), 30)
    with pytest.raises(E3D2Error, match="fps"):
        Motion(np.zeros((5, 24, 3)), np.zeros((5, 3)), 0)
    with pytest.raises(E3D2Error, match="trans"):
        Motion(np.zeros((5, 24, 3)), np.zeros((4, 3)), 30)


def test_saved_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = wave_motion().save(tmp_path / "m.npz")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
