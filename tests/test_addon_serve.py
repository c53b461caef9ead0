"""The backend process end to end (``python -m e3d2_core.serve``) and the headless script."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from addon_support import SONG
from e3d2_core.motion import Motion

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from blender_addon import backend  # noqa: E402  (backend.py needs no bpy, but the package __init__ does)


@pytest.fixture
def procedural_server(monkeypatch):
    """Serve processes use the procedural generator instead of a trained model."""
    monkeypatch.setenv("E3D2_SERVE_GENERATOR", "addon_support:procedural_generate")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))


def run_serve(lines, env=None, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "e3d2_core.serve"], input="".join(json.dumps(l) + "\n" for l in lines),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    return proc.returncode, [json.loads(l) for l in proc.stdout.splitlines()]


def test_serve_protocol_check_generate_and_errors(procedural_server):
    request = {"id": "g", "op": "generate", "audio": str(SONG), "seconds": 1.5, "offset": 0.5, "fps": 24,
               "seed": 2, "takes": 1}
    code, events = run_serve([{"id": "c", "op": "check"}, request])
    assert code == 0 and events[0]["event"] == "hello" and events[0]["protocol"] == 1
    import torch
    check = next(e for e in events if e.get("id") == "c" and e["event"] == "result")
    assert check["torch"] == torch.__version__ and check["device"] == "cpu"
    progress = [e["fraction"] for e in events if e.get("id") == "g" and e["event"] == "progress"]
    assert len(progress) >= 5 and progress == sorted(progress)
    result = next(e for e in events if e.get("id") == "g" and e["event"] == "result")
    motion = Motion.load(result["motions"][0])
    assert motion.fps == 24 and motion.num_frames == 36 and motion.meta["audio_offset"] == 0.5
    code, events = run_serve(["not json", {"id": "x", "op": "generate", "audio": "/nope.ogg", "fps": 24},
                              {"id": "y", "op": "dance"}])
    messages = [e.get("message", "") for e in events if e["event"] == "error"]
    assert any("bad request line" in m for m in messages)
    assert "/nope.ogg: audio file not found" in messages and "unknown op 'dance'" in messages


def test_subprocess_backend_job_progress_result_and_cancel(procedural_server, monkeypatch):
    python = sys.executable
    job = backend.SubprocessBackend(python).start({"id": "a", "op": "generate", "audio": str(SONG), "seconds": 1.0,
                                                   "fps": 30, "takes": 2})
    seen = []
    result = job.wait(on_progress=lambda f, m: seen.append(m), timeout=120)
    assert len(result["motions"]) == 2 and "take 2" in seen and job.process.wait(10) == 0
    monkeypatch.setenv("E3D2_SERVE_GENERATOR", "addon_support:slow_generate")
    job = backend.SubprocessBackend(python).start({"id": "b", "op": "generate", "audio": str(SONG), "seconds": 1.0,
                                                   "fps": 30})
    while not job.poll() and job.final is None:  # wait until it really runs
        pass
    started = time.monotonic()
    job.cancel()
    with pytest.raises(backend.BackendError, match="cancelled"):
        job.wait(timeout=60)
    job.process.wait(timeout=30)
    assert time.monotonic() - started < 10  # the 20-second job stopped promptly


def test_generate_with_the_real_api_and_the_bundled_model():
    """Without a generator override the process calls e3d2_core.api.generate with the bundled default model."""
    assert (ROOT / "assets" / "e3d2_default.pt").is_file()
    env = {k: v for k, v in os.environ.items() if k != "E3D2_SERVE_GENERATOR"}
    job = {"id": "r", "op": "generate", "audio": str(SONG), "seconds": 2.0, "fps": 30, "seed": 1}
    code, events = run_serve([job], env=env, timeout=600)
    final = next(e for e in events if e.get("id") == "r" and e["event"] in ("result", "error"))
    assert code == 0 and final["event"] == "result", final
    motion = Motion.load(final["motions"][0])
    assert motion.fps == 30 and abs(motion.duration - 2.0) < 0.1


def test_smpl_body_from_a_model_file(tmp_path):
    from test_skeleton import write_synthetic_smpl_model

    model = write_synthetic_smpl_model(tmp_path / "SMPL_NEUTRAL.pkl")
    job = backend.SubprocessBackend(sys.executable).start({"id": "b", "op": "body", "model": str(tmp_path / "SMPL_NEUTRAL.pkl")})
    with np.load(job.wait(timeout=120)["body"]) as body:
        assert body["vertices"].shape == (48, 3) and body["weights"].shape == (48, 24)
        assert body["faces"].shape == (4, 3) and np.allclose(body["joints"][0], 0.0, atol=1e-6)
        np.testing.assert_allclose(body["weights"], model["weights"])
    bad = backend.SubprocessBackend(sys.executable).start({"id": "b", "op": "body", "model": str(tmp_path / "x.pkl")})
    with pytest.raises(backend.BackendError, match="SMPL model file not found"):
        bad.wait(timeout=120)


def headless(*args, timeout=300):
    env = {**os.environ, "E3D2_SERVE_GENERATOR": "addon_support:procedural_generate", "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, str(ROOT / "blender_addon" / "headless.py"), "--", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.skipif(__import__("importlib").util.find_spec("bpy") is None, reason="needs the bpy module")
def test_headless_script_end_to_end(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    (songs / "a.ogg").write_bytes(SONG.read_bytes())
    (songs / "broken.ogg").write_bytes(b"not audio")
    out = headless("--audio", str(songs), "--out", str(tmp_path / "fbx"), "--blend", str(tmp_path / "blend"),
                   "--seconds", "2", "--fps", "25", "--seed", "5", "--backend-python", sys.executable)
    assert out.returncode == 1, out.stderr
    assert (tmp_path / "fbx" / "a.fbx").stat().st_size > 10_000 and (tmp_path / "blend" / "a.blend").is_file()
    assert not (tmp_path / "fbx" / "broken.fbx").exists()
    assert "1 of 2 songs done, 1 failed:" in out.stdout and "broken.ogg:" in out.stdout
    assert "dance_a_5, frames 1-50" in out.stdout and "Traceback" not in out.stderr
    missing = headless("--audio", str(tmp_path / "nope.ogg"), "--out", str(tmp_path / "x.fbx"))
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nope.ogg: no such song file or folder")


@pytest.mark.skipif(__import__("importlib").util.find_spec("bpy") is None, reason="needs the bpy module")
def test_headless_with_the_default_model_and_relative_paths(tmp_path):
    (tmp_path / "song.ogg").write_bytes(SONG.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "E3D2_SERVE_GENERATOR"}
    out = subprocess.run([sys.executable, str(ROOT / "blender_addon" / "headless.py"), "--", "--audio", "song.ogg",
                          "--out", "out/dance.fbx", "--blend", "out/dance.blend", "--seconds", "3", "--fps", "30"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "dance.fbx").stat().st_size > 10_000 and (tmp_path / "out" / "dance.blend").is_file()
    # 3 s of music = 22 whole code steps (176 frames at 60 fps) -> 88 frames at the scene's 30 fps
    last = int(__import__("re").search(r"frames 1-(\d+)", out.stdout).group(1))
    assert 85 <= last <= 90
