import pickle

import numpy as np
import pytest
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.skeleton import (NUM_JOINTS, default_skeleton, forward_kinematics, forward_kinematics_torch,
                                skeleton_from_smpl_model)


def random_pose(t, seed=0, scale=0.4):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=scale, size=(t, NUM_JOINTS, 3)), rng.normal(size=(t, 3))


def test_default_skeleton_is_smpl():
    sk = default_skeleton()
    assert sk.names[0] == "pelvis" and sk.names[23] == "right_hand" and len(sk.names) == 24
    assert sk.parents[:4] == (-1, 0, 0, 0)
    rest = sk.rest_joints()
    # pelvis to ankle is about 0.9 m in SMPL; the left hip is on +x (the body faces +Z)
    assert 0.85 < rest[0, 1] - rest[7, 1] < 0.95
    assert rest[1, 0] > 0 > rest[2, 0]
    assert np.array_equal(sk.mirror_map[sk.mirror_map], np.arange(24))
    assert sk.names[sk.mirror_map[16]] == "right_shoulder"


def test_fk_identity_pose_is_rest_pose_plus_translation():
    sk = default_skeleton()
    trans = np.array([[1.0, 2.0, 3.0]])
    joints = forward_kinematics(np.zeros((1, 24, 3)), trans)
    np.testing.assert_allclose(joints[0], sk.rest_joints() + trans, atol=1e-12)


def test_fk_rotating_root_rotates_whole_body():
    sk = default_skeleton()
    poses = np.zeros((1, 24, 3))
    poses[0, 0] = [0, np.pi / 2, 0]  # quarter turn about Y
    joints = forward_kinematics(poses, np.zeros((1, 3)))[0]
    rest = sk.rest_joints()
    expected = np.stack([rest[:, 2], rest[:, 1], -rest[:, 0]], -1)
    np.testing.assert_allclose(joints, expected, atol=1e-12)


def test_fk_numpy_and_torch_agree_and_keep_bone_lengths():
    poses, trans = random_pose(64)
    numpy_joints = forward_kinematics(poses, trans)
    torch_joints = forward_kinematics_torch(torch.from_numpy(poses), torch.from_numpy(trans)).numpy()
    np.testing.assert_allclose(numpy_joints, torch_joints, atol=1e-12)
    sk = default_skeleton()
    parents = np.array(sk.parents[1:])
    lengths = np.linalg.norm(numpy_joints[:, 1:] - numpy_joints[:, parents], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(sk.bone_lengths()[1:], lengths.shape), atol=1e-12)


def test_fk_rejects_wrong_shapes():
    with pytest.raises(E3D2Error, match="forward kinematics"):
        forward_kinematics(np.zeros((5, 22, 3)), np.zeros((5, 3)))


def write_synthetic_smpl_model(path, seed=0):
    """A tiny model in SMPL's pickle layout: 24 joints, each with 2 vertices, random shape directions."""
    rng = np.random.default_rng(seed)
    rest = default_skeleton().rest_joints()
    verts = np.repeat(rest, 2, axis=0) + rng.normal(scale=0.01, size=(48, 3))
    regressor = np.zeros((24, 48))
    for j in range(24):
        regressor[j, 2 * j: 2 * j + 2] = 0.5
    weights = np.zeros((48, 24))
    weights[np.arange(48), np.arange(48) // 2] = 1.0
    kintree = np.array([[4294967295] + list(default_skeleton().parents[1:]), list(range(24))], dtype=np.int64)
    model = {
        "v_template": verts, "J_regressor": regressor, "weights": weights,
        "posedirs": np.zeros((48, 3, 207)), "shapedirs": rng.normal(scale=0.05, size=(48, 3, 10)),
        "kintree_table": kintree, "f": np.array([[0, 1, 2]] * 4, dtype=np.int64), "J": rest,
    }
    with open(path, "wb") as handle:
        pickle.dump(model, handle)
    return model


def test_skeleton_from_synthetic_smpl_model(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    model = write_synthetic_smpl_model(path)
    betas = np.array([1.0, -0.5] + [0.0] * 8)
    sk = skeleton_from_smpl_model(path, betas=betas)
    shaped = model["v_template"] + np.einsum("vcb,b->vc", model["shapedirs"], betas)
    joints = model["J_regressor"] @ shaped
    parents = np.array(sk.parents[1:])
    np.testing.assert_allclose(sk.offsets[1:], joints[1:] - joints[parents], atol=1e-5)
    assert sk.offsets[0].tolist() == [0, 0, 0]
    # and the skeleton drives FK like the bundled one
    poses, trans = random_pose(3, seed=2)
    assert forward_kinematics(poses, trans, sk).shape == (3, 24, 3)


def test_skeleton_from_bad_model_file(tmp_path):
    bad = tmp_path / "model.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(E3D2Error, match="not a usable SMPL model file"):
        skeleton_from_smpl_model(bad)
    with pytest.raises(E3D2Error, match="not found"):
        skeleton_from_smpl_model(tmp_path / "missing.pkl")
