"""Music loading, features, beats, cache and bad input, on real audio (the bundled song, two CC0 loops)."""
import math
import warnings

import numpy as np
import pytest
import soundfile as sf

from e3d2_core import audio
from e3d2_core import cli
from e3d2_core.errors import E3D2Error
from e3d2_core.paths import asset_path

SONG = asset_path("music/Kevin_MacLeod_-_Vibe_Ace.hq.ogg")
DATA = __import__("pathlib").Path(__file__).parent / "data"
AMEN = DATA / "loop_amen.flac"              # CC0, 4 beats per loop
INDUSTRIAL = DATA / "loop_industrial.flac"  # CC0, 1 beat per loop


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))


def direct_bailando_recipe(y, sr):
    """The Bailando set (docs/audio-and-preview.md) written out plainly on the whole signal (no chunks), as
    Bailando's extractor does it."""
    import librosa
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr), ref=np.max),
                                    n_mfcc=20)
        delta = librosa.feature.delta(mfcc, width=3)
        harmonic, percussive = librosa.effects.hpss(y)
        chroma = librosa.feature.chroma_cqt(y=harmonic, sr=sr, n_octaves=7 if sr == 30720 else 5)
        onset = librosa.onset.onset_strength(y=percussive, sr=sr, aggregate=np.median)
        _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr)
        tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=sr)
    one_hot = np.zeros_like(onset)
    one_hot[beats] = 1
    return np.concatenate([mfcc, delta, chroma, onset[None], one_hot[None], tempogram]).T


@pytest.mark.parametrize("fps,seconds,chunk", [(60.0, 6, 2.0), (7.5, 24, 6.0)])
def test_bailando_features_equal_spec_recipe_chunked_or_not(fps, seconds, chunk):
    sr = audio.feature_sample_rate(fps)
    assert sr == {60.0: 30720, 7.5: 3840}[fps]
    y, got_sr = audio.load_audio(SONG, sr=sr)
    y = y[: seconds * sr]
    expected = direct_bailando_recipe(y, sr)
    whole, beats_whole, _ = audio.compute_features(y, sr, chunk_seconds=None)
    chunked, beats_chunked, _ = audio.compute_features(y, sr, chunk_seconds=chunk)
    T = math.ceil(seconds * fps)
    assert whole.shape == chunked.shape == (T, 438) and expected.shape[0] == T + 1  # librosa's extra end frame
    np.testing.assert_allclose(whole, expected[:T], atol=1e-4, rtol=1e-5)
    # Chunks of `chunk` seconds agree with the one-piece computation everywhere, edges included.
    np.testing.assert_allclose(chunked, whole, atol=1e-4, rtol=1e-5)
    np.testing.assert_array_equal(beats_whole, beats_chunked)


def test_song_features_shapes_and_beat_column():
    result = audio.extract_features(SONG, fps=7.5)
    assert result.kind == "bailando" and result.fps == 7.5
    assert abs(result.duration - 61.5) < 0.1
    assert result.features.shape == (math.ceil(result.duration * 7.5), 438)
    assert result.features.dtype == np.float32 and np.isfinite(result.features).all()
    beat = result.features[:, 53]
    assert set(np.unique(beat)) == {0.0, 1.0}
    np.testing.assert_array_equal(np.flatnonzero(beat), result.beat_frames)
    assert result.beat_frames.dtype == np.int64
    assert 60 < result.tempo < 200 and len(result.beat_frames) > 50
    assert len(result.audio_hash) == 64


@pytest.mark.parametrize("loop,beats_per_loop", [(AMEN, 4), (INDUSTRIAL, 1)])
def test_steady_loops_give_their_known_beat_period(tmp_path, loop, beats_per_loop):
    samples, sr = sf.read(loop, dtype="float32")
    loop_seconds = len(samples) / sr
    repeats = math.ceil(12.0 / loop_seconds)
    tiled = tmp_path / "tiled.wav"
    sf.write(tiled, np.tile(samples, (repeats, 1)), sr, subtype="FLOAT")
    result = audio.extract_features(tiled, fps=60, kind="compact", cache=False)
    intervals = np.diff(result.beat_frames) / 60.0
    expected = loop_seconds / beats_per_loop
    assert abs(np.median(intervals) - expected) <= 1 / 60 + 1e-9
    assert np.abs(intervals - expected).max() < 0.06          # steady: no beat off by more than ~3 frames
    assert abs(result.tempo - 60.0 / expected) < 0.05 * 60.0 / expected


def test_compact_shares_columns_and_beats_with_bailando():
    full = audio.extract_features(AMEN, fps=60)
    small = audio.extract_features(AMEN, fps=60, kind="compact")
    assert small.features.shape == (full.features.shape[0], 37)
    np.testing.assert_array_equal(small.beat_frames, full.beat_frames)
    np.testing.assert_allclose(small.features[:, 0:20], full.features[:, 0:20])
    np.testing.assert_allclose(small.features[:, 20:32], full.features[:, 40:52])
    np.testing.assert_allclose(small.features[:, 32:34], full.features[:, 52:54])
    sin, cos = small.features[:, 34], small.features[:, 35]
    np.testing.assert_allclose(sin ** 2 + cos ** 2, 1.0, atol=1e-5)
    np.testing.assert_allclose(cos[small.beat_frames], 1.0, atol=1e-6)
    rms_db = small.features[:, 36]
    assert (rms_db >= -80).all() and (rms_db <= 3).all() and rms_db.max() > -30


def test_mono_stereo_and_resampled_inputs_agree(tmp_path):
    stereo, sr = audio.load_audio(AMEN, mono=False)
    assert stereo.shape[0] == 2 and sr == 44100
    mono, _ = audio.load_audio(AMEN)
    np.testing.assert_allclose(mono, stereo.mean(axis=0), atol=1e-6)
    sf.write(tmp_path / "mono.wav", mono, sr, subtype="FLOAT")
    for rate in (48000, 22050):
        resampled, got = audio.load_audio(AMEN, sr=rate, mono=False)
        assert got == rate and resampled.shape == (2, math.ceil(stereo.shape[1] * rate / sr))
        sf.write(tmp_path / f"stereo{rate}.wav", resampled.T, rate, subtype="FLOAT")
    reference = audio.extract_features(AMEN, fps=60, cache=False)
    for name in ("mono.wav", "stereo48000.wav"):      # same content: same features up to float round-off
        same = audio.extract_features(tmp_path / name, fps=60, cache=False)
        np.testing.assert_allclose(same.features, reference.features, atol=1e-2, rtol=1e-4)
        np.testing.assert_array_equal(same.beat_frames, reference.beat_frames)
    low = audio.extract_features(tmp_path / "stereo22050.wav", fps=60, cache=False)
    assert low.features.shape == reference.features.shape
    # 22.05 kHz loses everything above 11 kHz: MFCCs change, but harmony, accents and beats do not.
    assert np.abs(low.beat_frames - reference.beat_frames).max() <= 1
    assert np.abs(low.features[:, 40:52] - reference.features[:, 40:52]).mean() < 1e-3
    assert np.corrcoef(low.features[:, 52], reference.features[:, 52])[0, 1] > 0.9


def test_frame_count_rule_and_rates():
    for fps in (60.0, 7.5, 30.0):
        result = audio.extract_features(INDUSTRIAL, fps=fps, cache=False)
        assert result.features.shape[0] == math.ceil(result.duration * fps)
    assert audio.num_frames(2.0, 60) == 120 and audio.num_frames(2.001, 60) == 121
    assert audio.cqt_octaves(30720) == 7 and audio.cqt_octaves(3840) == 5


def test_bpm_override_moves_the_beat_column():
    result = audio.extract_features(AMEN, fps=60, bpm=120, beat_offset=0.25)
    T = result.features.shape[0]
    expected = [f for f in (15, 45, 75, 105) if f < T]
    np.testing.assert_array_equal(result.beat_frames, expected)
    np.testing.assert_array_equal(np.flatnonzero(result.features[:, 53]), expected)
    assert result.tempo == 120.0
    early = audio.extract_features(AMEN, fps=60, kind="compact", bpm=100, beat_offset=-0.1)
    np.testing.assert_array_equal(early.beat_frames[:3], [30, 66, 102])   # 0.5 s, 1.1 s, 1.7 s
    np.testing.assert_allclose(early.features[early.beat_frames, 35], 1.0, atol=1e-6)
    np.testing.assert_array_equal(np.flatnonzero(early.features[:, 33]), early.beat_frames)
    with pytest.raises(E3D2Error, match="beat_offset needs bpm"):
        audio.extract_features(AMEN, beat_offset=0.5)
    with pytest.raises(E3D2Error, match="bpm must be positive"):
        audio.extract_features(AMEN, bpm=-3)


def test_music_beats_match_features_and_use_the_cache(monkeypatch):
    beats = audio.music_beats(AMEN, fps=60)
    np.testing.assert_array_equal(beats, audio.extract_features(AMEN, fps=60).beat_frames)
    monkeypatch.setattr(audio, "compute_features", lambda *a, **k: pytest.fail("cache not used"))
    np.testing.assert_array_equal(audio.music_beats(AMEN, fps=60), beats)


def test_cache_hit_same_content_elsewhere_and_corrupt_entry(tmp_path, monkeypatch):
    first = audio.extract_features(AMEN, fps=30)
    entries = list((tmp_path / "cache" / "features").glob("*.npz"))
    assert len(entries) == 1 and first.audio_hash in entries[0].name
    copy = tmp_path / "renamed.flac"
    copy.write_bytes(AMEN.read_bytes())
    real_compute = audio.compute_features
    monkeypatch.setattr(audio, "compute_features", lambda *a, **k: pytest.fail("cache not used"))
    again = audio.extract_features(copy, fps=30)
    np.testing.assert_array_equal(again.features, first.features)
    entries[0].write_bytes(b"not a zip file at all")
    calls = []
    monkeypatch.setattr(audio, "compute_features", lambda *a, **k: calls.append(1) or real_compute(*a, **k))
    fixed = audio.extract_features(AMEN, fps=30)
    assert calls == [1]
    np.testing.assert_allclose(fixed.features, first.features)
    assert audio._read_cache(entries[0], first.audio_hash, 30.0, "bailando") is not None   # rewritten


def write_truncated(tmp_path, ext):
    samples, sr = sf.read(AMEN, dtype="float32")
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, samples, sr)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return cut


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_truncated_files_are_refused(tmp_path, ext):
    cut = write_truncated(tmp_path, ext)
    with pytest.raises(E3D2Error, match="truncated") as err:
        audio.load_audio(cut)
    assert str(cut) in str(err.value) and "\n" not in str(err.value)


def test_bad_files_are_refused_with_one_line(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.ogg"
    text.write_text("these are not sounds\n" * 50)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(800, np.float32), 8000)
    longer = tmp_path / "three_seconds.wav"
    sf.write(longer, 0.1 * np.random.default_rng(0).standard_normal(3 * 8000).astype(np.float32), 8000)
    cases = [(tmp_path / "missing.wav", "no such audio file"), (empty, "empty"),
             (text, "not a readable audio file"), (short, "at least")]
    for path, message in cases:
        for call in (audio.load_audio, audio.extract_features, audio.music_beats):
            with pytest.raises(E3D2Error, match=message) as err:
                call(path)
            assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(E3D2Error, match=r"3\.0 s long, over the maximum of 2 s.*--max-seconds"):
        audio.extract_features(longer, max_seconds=2)
    assert audio.MAX_SECONDS == 1200.0
    half_second = tmp_path / "half_second.wav"
    sf.write(half_second, 0.1 * np.random.default_rng(1).standard_normal(4000).astype(np.float32), 8000)
    assert audio.extract_features(half_second, fps=7.5, cache=False).features.shape == (4, 438)
    with pytest.raises(E3D2Error, match="at least 0.8 s is needed at 5 fps"):
        audio.extract_features(half_second, fps=5)
    with pytest.raises(E3D2Error, match="fps must be between 5 and 120"):
        audio.extract_features(half_second, fps=2)


def test_silence_gives_features_but_no_beats(tmp_path):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(3 * 22050, np.float32), 22050)
    result = audio.extract_features(silent, fps=60)
    assert result.features.shape == (180, 438) and np.isfinite(result.features).all()
    assert len(result.beat_frames) == 0 and result.tempo == 0.0 and not result.features[:, 53].any()
    compact = audio.extract_features(silent, fps=60, kind="compact")
    assert np.isfinite(compact.features).all() and not compact.features[:, 33:36].any()
    with pytest.raises(E3D2Error, match="no music beats found.*--bpm"):
        audio.music_beats(silent)
    assert audio.tracked_beats(silent).shape == (0,)
    forced = audio.extract_features(silent, fps=60, bpm=60)
    np.testing.assert_array_equal(forced.beat_frames, [0, 60, 120])


def main(argv):
    """The real CLI entry point, with only this area's command registered (others live on other branches)."""
    saved = cli.COMMANDS
    cli.COMMANDS = {"features": saved["features"]}
    try:
        return cli.main(argv)
    finally:
        cli.COMMANDS = saved


def test_features_cli_writes_npz_and_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert main(["features", str(AMEN), "-o", str(out), "--fps", "7.5", "--kind", "compact"]) == 0
    with np.load(out) as data:
        assert set(data.files) == {"features", "beat_frames", "tempo", "fps", "kind", "duration", "audio_hash"}
        assert data["features"].shape == (math.ceil(float(data["duration"]) * 7.5), 37)
        assert str(data["kind"]) == "compact" and float(data["fps"]) == 7.5
    out2 = tmp_path / "g.npz"
    assert main(["features", str(AMEN), "-o", str(out2), "--bpm", "120", "--beat-offset", "0.25",
                 "--no-cache"]) == 0
    with np.load(out2) as data:
        np.testing.assert_array_equal(data["beat_frames"], [15, 45, 75, 105])
    capsys.readouterr()
    bad = tmp_path / "bad.npz"
    assert main(["features", str(tmp_path / "nope.ogg"), "-o", str(bad)]) == 2
    assert "no such audio file" in capsys.readouterr().err and not bad.exists()
    assert main(["features", str(AMEN), "-o", str(tmp_path / "f.txt")]) == 2
    assert main(["features", str(AMEN), "-o", str(out), "--max-seconds", "1"]) == 2
    assert "over the maximum of 1 s" in capsys.readouterr().err
    assert np.load(out)["features"].shape[1] == 37          # the earlier output survived the failed run
