"""Foot lock on real dances (CMU salsa mocap, AIST++ slices): contacts from height and speed, feet pinned by
two-bone leg IK, blended in and out, never below the floor, nothing above the hips moved."""
from pathlib import Path

import numpy as np
import pytest

from e3d2_core.io import load_motion_file
from e3d2_core.metrics.pfc import pfc_score
from e3d2_core.retarget import footlock
from e3d2_core.skeleton import default_skeleton, world_pose

DATA = Path(__file__).resolve().parent / "data"
LEGS = [1, 2, 4, 5, 7, 8, 10, 11]
ABOVE_LEGS = [j for j in range(24) if j not in LEGS]


def dances():
    yield "salsa", load_motion_file(DATA / "cmu_salsa_60_01_clip.bvh", fps=60)
    for path in sorted((DATA / "aistpp").glob("*.csv"))[:2]:
        yield path.stem, load_motion_file(path, fps=30, up="z").resample(60)


@pytest.mark.parametrize("name, motion", list(dances()), ids=lambda v: v if isinstance(v, str) else "")
def test_foot_lock_pins_standing_feet_and_leaves_the_rest(name, motion):
    poses, trans, report = footlock.lock_feet(motion.poses, motion.trans, motion.fps)
    _, before = world_pose(motion.poses, motion.trans)
    _, after = world_pose(poses, trans)
    assert report.contacts.any(axis=0).all()                         # both feet stand at some point
    assert report.slide_after <= 0.5 * report.slide_before            # sliding during contacts at least halved
    assert pfc_score(after, 60) < pfc_score(before, 60)
    assert np.abs(after[:, ABOVE_LEGS] - before[:, ABOVE_LEGS]).max() < 1e-9   # nothing above the hips moves
    np.testing.assert_allclose(trans, motion.trans, atol=1e-6)
    rest = default_skeleton().rest_joints()
    ankle_floor = footlock.FOOT_JOINT_ABOVE_SOLE + rest[7, 1] - rest[10, 1]
    assert after[:, [7, 8], 1].min() >= ankle_floor - 1e-6            # never below the floor
    assert after[:, [10, 11], 1].min() >= footlock.FOOT_JOINT_ABOVE_SOLE - 1e-6
    # outside contacts (and their blends) the legs stay as they were, where the feet were above the floor
    blend = int(round(footlock.BLEND_SECONDS * motion.fps)) + 1
    near = np.zeros(len(poses), bool)
    for k in range(2):
        for start, stop in footlock._runs(report.contacts[:, k]):
            near[max(start - blend, 0):stop + blend] = True
    low = (before[:, [7, 8], 1] < ankle_floor).any(-1) | (before[:, [10, 11], 1] < footlock.FOOT_JOINT_ABOVE_SOLE).any(-1)
    free = ~near & ~low
    if free.any():
        assert np.abs(after[free] - before[free]).max() < 0.02


def test_contacts_come_from_height_and_speed():
    fps = 60.0
    t = np.arange(120) / fps
    ankle = np.zeros((120, 3))
    ankle[:, 1] = 0.09
    ankle[:, 0] = np.where(t < 1.0, 0.01 * t, 0.01 + 2.0 * (t - 1.0))    # planted (1 cm/s), then swept (2 m/s)
    toe = ankle + [0.0, -0.06, 0.12]
    contact = footlock.detect_contacts(ankle, toe, fps, ankle_above_sole=0.09)
    assert contact[:55].all() and not contact[65:].any()
    lifted = ankle + [0.0, 0.2, 0.0]                                    # still, but in the air
    assert not footlock.detect_contacts(lifted, lifted + [0, -0.06, 0.12], fps, ankle_above_sole=0.09).any()


def test_pins_blend_in_and_out_smoothly():
    fps = 60.0
    points = np.stack([np.linspace(0, 0.5, 90), np.full(90, 0.09), np.zeros(90)], -1)
    contacts = np.zeros(90, bool)
    contacts[30:60] = True
    goals, weights = footlock.pin_targets(points, contacts, fps, lowest=0.1)
    assert (weights[30:60] == 1).all() and weights[0] == 0 and weights[-1] == 0
    np.testing.assert_allclose(goals[30:60], np.repeat([[points[30:60, 0].mean(), 0.1, 0.0]], 30, 0))
    assert np.abs(np.diff(goals[:, 0])).max() < 0.03                     # no jump where the pin starts or ends


def test_two_bone_ik_reaches_the_goal_and_keeps_bone_lengths():
    rng = np.random.default_rng(0)
    hip = rng.normal(0, 0.1, (50, 3))
    knee = hip + [0.0, -0.4, 0.05]
    ankle = knee + [0.0, -0.42, -0.03]
    goal = ankle + rng.normal(0, 0.08, (50, 3))
    upper, lower = footlock.two_bone_ik(hip, knee, ankle, goal, np.tile([0.0, 0.0, 1.0], (50, 1)))
    new_knee = hip + np.einsum("tij,tj->ti", upper, knee - hip)
    new_ankle = new_knee + np.einsum("tij,tj->ti", lower @ upper, ankle - knee)
    reach = np.linalg.norm(goal - hip, axis=-1) < 0.4 + 0.42 * 0.999
    np.testing.assert_allclose(new_ankle[reach], goal[reach], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=-1), np.linalg.norm(knee - hip, axis=-1))
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=-1), np.linalg.norm(ankle - knee, axis=-1))


def test_cli_foot_lock_cleans_an_existing_dance(tmp_path, capsys):
    from e3d2_core import cli
    from e3d2_core.motion import Motion

    raw = tmp_path / "raw.npz"
    assert cli.main(["import", str(DATA / "cmu_salsa_60_01_clip.bvh"), "-o", str(raw), "--fps", "60"]) == 0
    clean = tmp_path / "clean.npz"
    assert cli.main(["import", str(raw), "-o", str(clean), "--foot-lock"]) == 0
    assert "foot lock: sliding in contact 0.184 -> 0.004 m/s" in capsys.readouterr().out
    before, after = Motion.load(raw), Motion.load(clean)
    assert after.meta["foot_lock"]["slide_after"] < 0.5 * after.meta["foot_lock"]["slide_before"]
    assert pfc_score(after.joints(), 60) < pfc_score(before.joints(), 60)
