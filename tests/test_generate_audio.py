"""api.generate and `e3d2 generate` end to end on audio files."""
import numpy as np
import pytest
import soundfile

from e3d2_core import api, audio, cli
from e3d2_core.errors import Cancelled, E3D2Error
from e3d2_core.motion import Motion


@pytest.fixture(scope="module")
def click_track(tmp_path_factory):
    """3 s of clicks at 120 bpm over a quiet tone (22050 Hz)."""
    sr = 22050
    t = np.arange(3 * sr) / sr
    y = 0.05 * np.sin(2 * np.pi * 220 * t)
    for beat in np.arange(0.25, 3.0, 0.5):
        i = int(beat * sr)
        y[i:i + 400] += 0.8 * np.exp(-np.arange(400) / 60.0)
    path = tmp_path_factory.mktemp("audio") / "clicks.wav"
    soundfile.write(path, y.astype(np.float32), sr)
    return path


def test_generate_from_audio(click_track, tiny_bundle_path, monkeypatch, tmp_path):
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    seen = []
    motion = api.generate(click_track, checkpoint=tiny_bundle_path, progress=lambda f, m: seen.append(f))
    features = audio.extract_features(click_track, fps=7.5)
    assert isinstance(motion, Motion) and motion.fps == 60.0
    assert motion.num_frames == 8 * features.features.shape[0]
    assert motion.meta["audio_hash"] == features.audio_hash and len(motion.meta["checkpoint_sha256"]) == 64
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    short = api.generate(click_track, seconds=1.0, checkpoint=tiny_bundle_path, bpm=100.0, beat_offset=0.0)
    assert short.num_frames == 8 * 7 and short.meta["bpm_override"] == 100.0
    takes = api.generate(click_track, seconds=1.0, checkpoint=tiny_bundle_path, takes=2, temperature=1.0)
    assert [m.meta["take"] for m in takes] == [1, 2]
    with pytest.raises(Cancelled):
        api.generate(click_track, checkpoint=tiny_bundle_path, cancel=lambda: True)


def test_silence_is_refused(tmp_path, tiny_bundle_path, monkeypatch):
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(22050 * 2, np.float32), 22050)
    with pytest.raises(E3D2Error, match="silent"):
        api.generate(path, checkpoint=tiny_bundle_path)


def test_cli_writes_takes(click_track, tiny_bundle_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "COMMANDS", {"generate": "e3d2_core.commands.generate"})
    out = tmp_path / "out" / "dance.npz"
    code = cli.main(["generate", str(click_track), "-o", str(out), "--checkpoint", str(tiny_bundle_path),
                     "--takes", "2", "--temperature", "0.8", "--top-k", "5", "--seconds", "1", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["dance.take1.npz", "dance.take2.npz"]
    assert Motion.load(out.parent / "dance.take2.npz").meta["top_k"] == 5
    code = cli.main(["generate", str(tmp_path / "missing.ogg"), "-o", str(tmp_path / "x.npz"),
                     "--checkpoint", str(tiny_bundle_path), "--quiet"])
    assert code == 2 and not (tmp_path / "x.npz").exists()
    assert "no such audio file" in capsys.readouterr().err


def test_a_slow_groove_is_danced_at_its_own_tempo(tiny_bundle_path, monkeypatch, tmp_path):
    # the tracker hears this 70-bpm groove at 140 (its off-beat hats count); the beats the guide and the lock
    # step on are the groove's own (e3d2_core.beat_level), and the features keep the tracker's
    from test_beat_level import SR, drum_track
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    y, _ = drum_track(70.0, seconds=20.0)
    path = tmp_path / "groove70.wav"
    soundfile.write(path, y, SR)
    motion = api.generate(path, seconds=8.0, checkpoint=tiny_bundle_path, seed=0)
    assert abs(60 * 60 / np.median(np.diff(audio.tracked_beats(path))) - 140) < 8
    assert abs(motion.meta["dance_tempo"] - 70) < 3
    overridden = api.generate(path, seconds=8.0, checkpoint=tiny_bundle_path, seed=0, bpm=140.0, beat_offset=0.25)
    assert abs(overridden.meta["dance_tempo"] - 140) < 2     # a tempo the user gives is kept as given
