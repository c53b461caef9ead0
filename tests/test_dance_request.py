"""One request for a dance (``api.DanceRequest``): its defaults written once, its checks, and the same dance from
every door (``api.generate``, ``api.dance``, ``e3d2 generate``, the backend's JSON request)."""
import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from e3d2_core import api, audio, cli, editing, generation, serve
from e3d2_core.api import BEAT_LOCK_DEFAULT, DanceRequest
from e3d2_core.commands import generate as generate_command
from e3d2_core.dance_options import DEFAULT_TEMPERATURE
from e3d2_core.errors import E3D2Error
from e3d2_core.motion import Motion

ROOT = Path(__file__).resolve().parent.parent


def _cli(monkeypatch, argv) -> int:
    monkeypatch.setattr(cli, "COMMANDS", {"generate": "e3d2_core.commands.generate"})
    return cli.main(argv)


def _assert_same_dance(a: Motion, b: Motion) -> None:
    assert a.fps == b.fps
    np.testing.assert_array_equal(a.poses, b.poses)
    np.testing.assert_array_equal(a.trans, b.trans)


# ---------------------------------------------------------------------------------------------- defaults
def test_the_defaults_are_the_requests(song_clip):
    request = DanceRequest("song.ogg")
    assert request.temperature == DEFAULT_TEMPERATURE == generation.DEFAULT_TEMPERATURE == 0.7
    assert request.beat_lock is None and request.beat_lock_strength == BEAT_LOCK_DEFAULT == 1.0
    assert (request.seconds, request.offset, request.seed, request.takes, request.top_k) == (None, 0.0, 0, 1, None)
    assert (request.facing, request.fps, request.in_place, request.pick, request.policy) == (0.0, None, False,
                                                                                              "all", "auto")
    # api.generate keeps its keywords; their defaults are the request's
    defaults = {field.name: field.default for field in dataclasses.fields(DanceRequest)}
    keywords = inspect.signature(api.generate).parameters
    shared = set(keywords) & set(defaults) - {"audio"}
    assert shared == set(defaults) - {"audio", "offset", "facing", "fps"}
    assert {name: keywords[name].default for name in shared} == {name: defaults[name] for name in shared}
    # edits sample at the same temperature by default
    for function in (api.regenerate, api.extend, editing.edit):
        assert inspect.signature(function).parameters["temperature"].default == DEFAULT_TEMPERATURE
    # the command line and the backend, given nothing, ask for the default dance
    args = cli.parse(cli.build_parser(), ["generate", "song.ogg", "-o", "out.npz"])
    assert generate_command.dance_request(args) == request
    song = str(song_clip)
    assert serve.dance_request({"audio": song, "fps": 30}) == DanceRequest(song, fps=30)
    nulls = {"seconds": 0, "offset": None, "seed": None, "takes": None, "temperature": None, "beat_lock": None,
             "facing": None, "in_place": None, "checkpoint": None, "device": None}
    assert serve.dance_request({"audio": song, "fps": 30, **nulls}) == DanceRequest(song, fps=30)


def test_the_request_and_its_json_need_no_torch():
    code = ("import sys\nsys.modules['torch'] = None\n"
            "from e3d2_core import serve\nfrom e3d2_core.api import DanceRequest\n"
            "print(serve.request_json(DanceRequest('song.ogg', takes=2, fps=24))['takes'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


def test_checkpoints_and_scores_do_not_import_the_api():
    for name in ("checkpoint", "scoring", "continuation"):
        tree = ast.parse((ROOT / "e3d2_core" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "e3d2_core.api", name
                assert not (node.module == "e3d2_core" and any(a.name == "api" for a in node.names)), name


# ---------------------------------------------------------------------------------------------- checks
@pytest.mark.parametrize("options, message", [
    ({"takes": 0}, "takes must be a whole number ≥ 1, got 0"),
    ({"takes": 1.5}, "takes must be a whole number"),
    ({"takes": True}, "takes must be a whole number"),
    ({"seed": 0.5}, "seed must be a whole number"),
    ({"temperature": -0.1}, "temperature must be a number ≥ 0"),
    ({"temperature": float("nan")}, "temperature must be a number ≥ 0"),
    ({"top_k": 0}, "top_k must be a whole number ≥ 1"),
    ({"seconds": 0}, "seconds must be a positive number"),
    ({"seconds": float("inf")}, "seconds must be a positive number"),
    ({"offset": -1.0}, "offset must be a number of seconds ≥ 0"),
    ({"beat_lock": 1.5}, "beat_lock must be a number from 0 to 1"),
    ({"in_place": 1}, "in_place must be True or False"),
    ({"facing": float("inf")}, "facing must be a number of degrees"),
    ({"fps": 0}, "fps must be a positive number of frames per second"),
    ({"policy": "best"}, "policy must be 'auto', 'rl' or 'bc'"),
    ({"pick": "worst"}, "pick must be 'all' or 'best'"),
    ({"seed_motion": 3}, "seed_motion must be a Motion or a .npz path"),
    ({"checkpoint": 3}, "checkpoint must be the path of a model bundle"),
])
def test_a_bad_option_is_refused_by_name(options, message):
    with pytest.raises(E3D2Error, match=message):
        DanceRequest("song.ogg", **options)


def test_every_door_refuses_a_bad_request_in_one_line(song_clip, monkeypatch, capsys, tmp_path):
    with pytest.raises(E3D2Error, match="audio must be the path of an audio file"):
        DanceRequest(None)
    events = []
    serve.handle({"id": "x", "op": "generate", "audio": str(song_clip), "fps": 30, "takes": 0}, events.append,
                 lambda: False)
    assert events == [{"id": "x", "event": "error", "message": "takes must be a whole number ≥ 1, got 0"}]
    events.clear()
    serve.handle({"id": "y", "op": "generate", "audio": str(song_clip)}, events.append, lambda: False)
    assert events == [{"id": "y", "event": "error", "message": "request is missing 'fps'"}]
    code = _cli(monkeypatch, ["generate", str(song_clip), "-o", str(tmp_path / "x.npz"), "--top-k", "0", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "top_k must be a whole number ≥ 1, got 0" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(E3D2Error, match="as a Motion .npz path"):
        serve.request_json(DanceRequest("song.ogg", seed_motion=Motion.load(_saved(tmp_path))))


def _saved(tmp_path) -> Path:
    t = np.arange(30)[:, None, None] / 30.0
    return Motion(0.2 * np.sin(t * np.ones((1, 24, 3))), np.zeros((30, 3)), 30.0).save(tmp_path / "seed.npz")


# ---------------------------------------------------------------------------------------------- one dance
def test_the_api_the_command_line_and_the_backend_dance_the_same(song_clip, tiny_bundle_path, tmp_path,
                                                                  monkeypatch):
    options = dict(seconds=2.0, seed=3, takes=2, temperature=0.9, top_k=16, beat_lock=0.5, in_place=True)
    direct = api.generate(song_clip, checkpoint=tiny_bundle_path, **options)
    assert api.dance(DanceRequest(song_clip, checkpoint=tiny_bundle_path, **options))[1].meta == direct[1].meta
    out = tmp_path / "cli" / "dance.npz"
    out.parent.mkdir()
    code = _cli(monkeypatch, ["generate", str(song_clip), "-o", str(out), "--checkpoint", str(tiny_bundle_path),
                              "--seconds", "2", "--seed", "3", "--takes", "2", "--temperature", "0.9", "--top-k",
                              "16", "--beat-lock", "0.5", "--in-place", "--quiet"])
    assert code == 0
    request = {"id": "g", "op": "generate", "audio": str(song_clip), "fps": 60, "checkpoint": str(tiny_bundle_path),
               "out_dir": str(tmp_path / "serve"), **options}
    served = serve.generate_motions(request, lambda *a: None, lambda: False)
    for k in range(2):
        _assert_same_dance(Motion.load(out.parent / f"dance.take{k + 1}.npz"), direct[k])
        _assert_same_dance(Motion.load(served[k]), direct[k])


def test_a_part_of_the_song_is_danced_as_in_the_whole_dance_turned_at_the_scene_rate(song_clip, tiny_bundle_path,
                                                                                        tmp_path):
    request = DanceRequest(song_clip, seconds=1.5, offset=0.5, facing=90.0, fps=24.0, seed=2,
                           checkpoint=tiny_bundle_path)
    take = api.dance(request)[0]
    whole = api.generate(song_clip, seconds=2.0, seed=2, checkpoint=tiny_bundle_path)
    _assert_same_dance(take, api.rotate_facing(whole.trim_seconds(0.5, 2.0), 90.0).resample(24.0))
    assert take.num_frames == 36
    json_request = {"op": "generate", **serve.request_json(request), "out_dir": str(tmp_path)}
    assert serve.dance_request(json_request) == dataclasses.replace(request, audio=str(song_clip),
                                                                    checkpoint=str(tiny_bundle_path))
    _assert_same_dance(Motion.load(serve.generate_motions(json_request, lambda *a: None, lambda: False)[0]), take)


def test_a_saved_dance_is_cut_turned_and_held_in_place_as_a_fresh_one(song_clip, tmp_path):
    t = np.arange(180)[:, None, None] / 60.0
    trans = np.concatenate([0.3 * t[:, 0], 0.9 + 0 * t[:, 0], -0.2 * t[:, 0]], axis=-1)
    saved = Motion(0.3 * np.sin(3 * t * np.ones((1, 24, 3))), trans, 60.0, {"seed": 4}).save(tmp_path / "d.npz")
    request = {"op": "generate", "audio": str(song_clip), "motion": str(saved), "offset": 1.0, "seconds": 1.5,
               "fps": 30, "facing": -45.0, "in_place": True, "out_dir": str(tmp_path / "out")}
    take = Motion.load(serve.generate_motions(request, lambda *a: None, lambda: False)[0])
    fresh = Motion.load(saved).in_place().trim_seconds(1.0, 2.5)
    _assert_same_dance(take, api.rotate_facing(fresh, -45.0).resample(30.0))
    assert np.ptp(take.trans[:, [0, 2]], axis=0).max() == 0.0


# ---------------------------------------------------------------------------------------------- the song, once
def test_the_song_is_decoded_once_and_its_silence_read_from_the_features(tiny_bundle_path, tmp_path, monkeypatch):
    import soundfile

    sr = 22050
    tone = 0.3 * np.sin(2 * np.pi * 330 * np.arange(3 * sr) / sr)
    song = tmp_path / "tone.wav"
    soundfile.write(song, tone.astype(np.float32), sr)
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    decoded = []
    real_load = audio.load_audio
    monkeypatch.setattr(audio, "load_audio", lambda *a, **k: decoded.append(k.get("sr")) or real_load(*a, **k))
    api.generate(song, checkpoint=tiny_bundle_path, beat_lock=0)
    assert decoded and len(decoded) == len(set(decoded))             # each rate once: no second decode
    decoded.clear()
    api.generate(song, checkpoint=tiny_bundle_path, beat_lock=0)
    assert decoded == []                                              # cached features carry the peak
    features = audio.extract_features(song, fps=7.5)
    assert features.peak == pytest.approx(0.3, rel=0.05)


def test_a_cache_entry_without_the_peak_is_recomputed(tmp_path, monkeypatch, song_clip):
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    first = audio.extract_features(song_clip, fps=7.5)
    entry = next((tmp_path / "cache" / "features").glob("*.npz"))
    np.savez(entry, features=first.features, beat_frames=first.beat_frames, tempo=np.float64(first.tempo),
             duration=np.float64(first.duration), audio_hash=np.array(first.audio_hash))
    assert audio._read_cache(entry, first.audio_hash, 7.5, "bailando") is None
    again = audio.extract_features(song_clip, fps=7.5)
    assert again.peak == first.peak and audio._read_cache(entry, first.audio_hash, 7.5, "bailando") is not None
