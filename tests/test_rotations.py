import numpy as np
import torch
from scipy.spatial.transform import Rotation

from e3d2_core import rotations as R


def random_axis_angle(n, seed=0, max_angle=np.pi):
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(0, max_angle, size=(n, 1))


def test_axis_angle_to_matrix_matches_scipy():
    aa = random_axis_angle(500)
    np.testing.assert_allclose(R.axis_angle_to_matrix(aa), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)


def test_round_trips_through_every_representation():
    aa = random_axis_angle(500, seed=1, max_angle=np.pi - 1e-3)
    np.testing.assert_allclose(R.matrix_to_axis_angle(R.axis_angle_to_matrix(aa)), aa, atol=1e-9)
    np.testing.assert_allclose(R.quaternion_to_axis_angle(R.axis_angle_to_quaternion(aa)), aa, atol=1e-9)
    np.testing.assert_allclose(R.rot6d_to_axis_angle(R.axis_angle_to_rot6d(aa)), aa, atol=1e-9)
    m = R.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(R.quaternion_to_matrix(R.matrix_to_quaternion(m)), m, atol=1e-12)


def test_small_and_near_pi_angles():
    aa = np.array([[0, 0, 0], [1e-9, 0, 0], [0, 1e-5, 0], [0, 0, np.pi - 1e-7]])
    m = R.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(m, Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)
    back = R.matrix_to_axis_angle(m)
    np.testing.assert_allclose(R.axis_angle_to_matrix(back), m, atol=1e-9)


def test_rot6d_of_arbitrary_vector_is_a_rotation():
    d6 = torch.randn(100, 6, dtype=torch.float64)
    m = R.rot6d_to_matrix(d6)
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    torch.testing.assert_close(m.transpose(-1, -2) @ m, eye)
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(100, dtype=torch.float64))


def test_gradients_are_finite_at_zero_rotation():
    aa = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    R.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_slerp_midpoint_and_shortest_path():
    q0 = R.axis_angle_to_quaternion(np.array([0.0, 0.0, 0.0]))
    q1 = R.axis_angle_to_quaternion(np.array([0.0, 1.0, 0.0]))
    mid = R.quaternion_slerp(q0, q1, 0.5)
    np.testing.assert_allclose(R.quaternion_to_axis_angle(mid), [0, 0.5, 0], atol=1e-12)
    # -q1 is the same rotation: the blend must not take the long way round
    mid_flipped = R.quaternion_slerp(q0, -q1, 0.5)
    np.testing.assert_allclose(R.quaternion_to_axis_angle(mid_flipped), [0, 0.5, 0], atol=1e-12)


def test_quaternion_multiply_composes_rotations():
    a, b = random_axis_angle(50, seed=3), random_axis_angle(50, seed=4)
    qa, qb = R.axis_angle_to_quaternion(a), R.axis_angle_to_quaternion(b)
    np.testing.assert_allclose(R.quaternion_to_matrix(R.quaternion_multiply(qa, qb)),
                               R.axis_angle_to_matrix(a) @ R.axis_angle_to_matrix(b), atol=1e-12)


def test_rotation_helpers_match_scipy():
    """The add-on's keyframes go through these (Blender's quaternion order, w >= 0 from matrices)."""
    rot = Rotation.random(200, random_state=3)
    q = R.axis_angle_to_quaternion(rot.as_rotvec())
    np.testing.assert_allclose(R.quaternion_to_matrix(q), rot.as_matrix(), atol=1e-12)
    back = R.matrix_to_quaternion(rot.as_matrix())
    np.testing.assert_allclose(np.abs(np.sum(back * q, -1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(Rotation.from_rotvec(R.quaternion_to_axis_angle(q)).as_matrix(), rot.as_matrix(),
                               atol=1e-12)
    flips = R.continuous_quaternions(np.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [-0.9, 0.1, 0, 0]]))
    assert (flips[:, 0] > 0).all()


def test_numpy_functions_and_their_torch_twins_agree():
    aa = random_axis_angle(300, seed=5)
    rng = np.random.default_rng(6)
    inputs = {"aa": aa, "q": R.axis_angle_to_quaternion(aa), "m": R.axis_angle_to_matrix(aa),
              "d6": rng.normal(size=(300, 6))}
    cases = [(R.axis_angle_to_quaternion, "aa"), (R.quaternion_to_axis_angle, "q"), (R.quaternion_to_matrix, "q"),
             (R.matrix_to_quaternion, "m"), (R.axis_angle_to_matrix, "aa"), (R.matrix_to_axis_angle, "m"),
             (R.matrix_to_rot6d, "m"), (R.rot6d_to_matrix, "d6"), (R.axis_angle_to_rot6d, "aa"),
             (R.rot6d_to_axis_angle, "d6")]
    for fn, key in cases:
        got = fn(inputs[key])
        twin = fn(torch.from_numpy(inputs[key]))
        assert isinstance(got, np.ndarray) and isinstance(twin, torch.Tensor), fn.__name__
        np.testing.assert_allclose(got, twin.numpy(), atol=1e-12, err_msg=fn.__name__)
    q0, q1, t = inputs["q"], np.roll(inputs["q"], 1, axis=0), rng.uniform(size=300)
    np.testing.assert_allclose(R.quaternion_slerp(q0, q1, t),
                               R.quaternion_slerp(torch.from_numpy(q0), torch.from_numpy(q1), t).numpy(), atol=1e-12)
    np.testing.assert_allclose(R.quaternion_multiply(q0, q1),
                               R.quaternion_multiply(torch.from_numpy(q0), torch.from_numpy(q1)).numpy(), atol=1e-12)
