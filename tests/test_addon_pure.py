"""The add-on's pure parts (no Blender needed): timing, names, channels, body, the backend layer."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from e3d2_core import rotations
from e3d2_core.motion import Motion
from e3d2_core.skeleton import default_skeleton, forward_kinematics, rest_positions

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    """Import a blender_addon module without the package __init__ (which needs bpy)."""
    spec = importlib.util.spec_from_file_location(f"_pure_{name}", ROOT / "blender_addon" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


kf, arm, be = _load("keyframes"), _load("armature"), _load("backend")


def test_strip_timing_trimmed_and_ntsc():
    fps = kf.scene_fps(30, 1.001)
    assert fps == pytest.approx(29.97003, abs=1e-5)
    timing = kf.strip_timing(frame_start=10, frame_final_start=40, frame_final_end=340, fps=fps)
    assert timing.first_frame == 40 and timing.audio_offset == pytest.approx(30 / fps)
    assert timing.seconds == pytest.approx(300 / fps) and timing.last_frame == 339
    assert kf.strip_timing(10, 10, 20, 24.0, sound_offset=0.5).audio_offset == pytest.approx(0.5)
    np.testing.assert_array_equal(kf.key_frames(40, 3), [40, 41, 42])


def test_action_names_are_short_unique_and_utf8_safe():
    assert kf.action_name("Kevin MacLeod - Vibe Ace", 7) == "dance_Kevin_MacLeod_Vibe_Ace_7"
    assert kf.action_name("song", 7, take=2) == "dance_song_7_t3"
    long = kf.action_name("ü" * 80, 123456789)
    assert len(long.encode("utf-8")) <= 63 and long.endswith("_123456789") and "\ufffd" not in long
    assert kf.action_name("song", 1, existing={"dance_song_1"}) == "dance_song_1.001"
    clash = kf.action_name("x" * 80, 1)
    assert len(kf.action_name("x" * 80, 1, existing={clash}).encode()) <= 63


def test_take_names_share_one_prefix_and_one_suffix():
    song = "Kevin MacLeod - Plum Fantastic (Extended Dance Mix for the Whole Afternoon)"
    names = kf.take_names(song, 7, 12)
    prefix = names[0].removesuffix("_7")
    assert names == [f"{prefix}_7"] + [f"{prefix}_7_t{k}" for k in range(2, 13)]
    assert prefix.startswith("dance_Kevin_MacLeod_Plum") and max(len(n.encode()) for n in names) <= 63
    again = kf.take_names(song, 7, 12, existing=names[3:4])                  # one name taken: all move on
    assert again == [n + ".001" for n in names] and max(len(n.encode()) for n in again) <= 63
    for length in range(40, 70):                                              # at and around the limit
        for n in kf.take_names("y" * length, 12345, 3, existing=kf.take_names("y" * length, 12345, 3)):
            assert len(n.encode()) <= 63 and n.startswith("dance_y")
    assert kf.take_names("Vibe Ace", 0, 2) == ["dance_Vibe_Ace_0", "dance_Vibe_Ace_0_t2"]


def test_progress_printer_rewrites_one_line_on_a_terminal_and_prints_quarters_elsewhere():
    import io

    from blender_addon.progress import ProgressPrinter

    events = [(k / 230, f"step {k}") for k in range(231)]
    pipe = io.StringIO()
    printer = ProgressPrinter(pipe, is_tty=False)
    for fraction, message in events:
        printer(fraction, message)
    printer.close()
    lines = pipe.getvalue().splitlines()
    assert [line.split("%")[0] for line in lines] == ["e3d2:  25", "e3d2:  50", "e3d2:  75", "e3d2: 100"]
    assert lines[-1] == "e3d2: 100% step 230"
    terminal = io.StringIO()
    printer = ProgressPrinter(terminal, is_tty=True)
    for fraction, message in events:
        printer(fraction, message)
    printer.close()
    text = terminal.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") == 231
    assert text.split("\r")[-1].rstrip() == "e3d2: 100% step 230"
    stopped = io.StringIO()                                                  # a job that fails at 40 %
    printer = ProgressPrinter(stopped, is_tty=False)
    for fraction, message in events[:93]:
        printer(fraction, message)
    printer.close()
    assert stopped.getvalue().splitlines() == ["e3d2:  25% step 58", "e3d2:  40% step 92"]




def _pose_chain(quats, location, rest_rot, heads, parents):
    """Blender's pose evaluation in numpy: M_j = M_p (Rest_p^-1 Rest_j) Basis_j, heads as positions."""
    rest = np.tile(np.eye(4), (24, 1, 1))
    rest[:, :3, :3], rest[:, :3, 3] = rest_rot, heads
    out = np.zeros((len(quats), 24, 3))
    for t in range(len(quats)):
        world = []
        for j, p in enumerate(parents):
            basis = np.eye(4)
            basis[:3, :3] = rotations.quaternion_to_matrix(quats[t, j])
            if j == 0:
                basis[:3, 3] = location[t]
            m = rest[j] @ basis if p < 0 else world[p] @ np.linalg.inv(rest[p]) @ rest[j] @ basis
            world.append(m)
            out[t, j] = m[:3, 3]
    return out


@pytest.mark.parametrize("frame_name", ["identity", "z_up"])
def test_bone_channels_reproduce_fk_for_any_rest_orientation(frame_name):
    sk = default_skeleton()
    data = {"names": list(sk.names), "parents": list(sk.parents), "offsets": sk.offsets}
    rng = np.random.default_rng(0)
    poses, trans = rng.normal(scale=0.5, size=(5, 24, 3)), rng.normal(size=(5, 3))
    frame = np.eye(3) if frame_name == "identity" else Rotation.from_euler("x", 90, degrees=True).as_matrix()
    heads = rest_positions(data["offsets"], data["parents"]) @ frame.T
    rest_rot = Rotation.random(24, random_state=1).as_matrix()  # arbitrary bone rolls/directions
    assert np.allclose(kf.armature_frame(heads, data["names"], arm.reference_heads()), frame, atol=1e-9)
    quats, location = kf.motion_to_bone_channels(poses, trans, rest_rot, heads[0], frame)
    expected = forward_kinematics(poses, trans) @ frame.T
    np.testing.assert_allclose(_pose_chain(quats, location, rest_rot, heads, data["parents"]), expected, atol=1e-9)
    back_poses, back_trans = kf.bone_channels_to_motion(quats, location, rest_rot, heads[0], frame)
    np.testing.assert_allclose(forward_kinematics(back_poses, back_trans), forward_kinematics(poses, trans), atol=1e-9)


def test_skeleton_layout_and_capsule_body():
    data = arm.load_skeleton_data()
    heads = rest_positions(data["offsets"], data["parents"])
    np.testing.assert_allclose(heads, default_skeleton().rest_joints(), atol=1e-12)
    tails = arm.bone_tails(heads, data["names"], data["parents"])
    assert (np.linalg.norm(tails - heads, axis=1) >= 0.03 - 1e-12).all()
    assert np.allclose(tails[0], heads[3])  # pelvis points at spine1
    verts, faces, owner = arm.capsule_body(heads, data["names"], data["parents"])
    assert len(verts) == len(owner) and max(max(f) for f in faces) == len(verts) - 1
    # each capsule stays within its radius of its segment: nothing floats away from the skeleton
    assert np.linalg.norm(verts - heads[owner], axis=1).max() < 0.7
    # closed surface: every edge is shared by exactly two faces
    edges = {}
    for f in faces:
        for a, b in zip(f, f[1:] + f[:1]):
            edges[frozenset((a, b))] = edges.get(frozenset((a, b)), 0) + 1
    assert set(edges.values()) == {2}
    js = arm.skeleton_from_joints(heads + [0, 1, 0], data["names"], data["parents"])
    np.testing.assert_allclose(js["offsets"][1:], data["offsets"][1:], atol=1e-12)


def test_thread_job_reports_progress_result_error_and_cancel():
    from e3d2_core import serve
    from addon_support import SONG, procedural_generate

    request = {"id": "g", "op": "generate", "audio": str(SONG), "seconds": 2.0, "offset": 1.0, "fps": 24.0,
               "seed": 3, "takes": 2, "facing": 90.0}
    seen = []
    job = be.InProcessBackend(generate_fn=procedural_generate).start(request)
    result = job.wait(on_progress=lambda f, m: seen.append(f))
    assert seen and seen == sorted(seen) and len(result["motions"]) == 2
    motion = Motion.load(result["motions"][0])
    assert motion.fps == 24.0 and motion.num_frames == 48 and motion.meta["audio_offset"] == 1.0
    # the take is the generator's dance from second 1 on, turned 90 degrees about Y, at 24 fps
    reference = procedural_generate(str(SONG), seconds=3.0, seed=3)[0].trim_seconds(1.0, 3.0)
    turned = serve.rotate_facing(reference, 90.0).resample(24.0)
    np.testing.assert_allclose(motion.joints(), turned.joints(), atol=1e-4)
    plain = reference.resample(24.0).trans
    np.testing.assert_allclose(motion.trans[:, 0], plain[:, 2], atol=1e-5)  # +90 deg about Y: x' = z, z' = -x
    np.testing.assert_allclose(motion.trans[:, 2], -plain[:, 0], atol=1e-5)

    bad = be.InProcessBackend(generate_fn=procedural_generate).start({**request, "audio": "/no/such.ogg"})
    with pytest.raises(be.BackendError, match="audio file not found"):
        bad.wait()
    slow = be.InProcessBackend(generate_fn=lambda *a, **k: procedural_generate(*a, delay=5.0, **k)).start(request)
    slow.cancel()
    with pytest.raises(be.BackendError, match="cancelled"):
        slow.wait(timeout=10)


def test_missing_backend_interpreter_and_setup_without_source(tmp_path):
    with pytest.raises(be.BackendError, match="interpreter not found"):
        be.SubprocessBackend(str(tmp_path / "nope" / "python")).start({"id": "x", "op": "check"})
    with pytest.raises(be.BackendError, match="online access"):
        be.setup_environment(tmp_path / "venv", ["numpy"], online=False)
    with pytest.raises(be.BackendError, match="no backend"):
        be.choose_backend("SUBPROCESS", "")
