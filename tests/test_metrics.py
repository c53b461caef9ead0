"""Metrics on real AIST++ motion and on constructed cases with known answers."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from bench import metrics_loop_reference as loop
from e3d2_core import cli
from e3d2_core.api import evaluate
from e3d2_core.errors import E3D2Error
from e3d2_core.metrics import (beat_align_score, geometric_features, kinetic_features, motion_beats, pfc_score)
from e3d2_core.metrics.evaluate import feature_metrics
from e3d2_core.metrics.inputs import load_track, resample_positions
from e3d2_core.motion import Motion, from_z_up, to_z_up
from e3d2_core.skeleton import default_skeleton

AIST_DIR = Path(__file__).parent / "data" / "aistpp"
AIST_FILES = sorted(AIST_DIR.glob("true_*.csv"))


def read_aist(path) -> np.ndarray:
    """(T, 24, 3) Y-up metres at 30 fps from an AIST++ Z-up CSV slice."""
    return from_z_up(np.loadtxt(path, delimiter=",").reshape(-1, 24, 3))


@pytest.fixture(scope="module")
def aist30():
    return {p.stem: read_aist(p) for p in AIST_FILES}


@pytest.fixture(scope="module")
def aist60(aist30):
    return {name: resample_positions(track, 30.0) for name, track in aist30.items()}


def rotate_y(track, degrees):
    a = np.radians(degrees)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return track @ rot.T


def mirror(track):
    return track[:, default_skeleton().mirror_map] * np.array([-1.0, 1.0, 1.0])


def augmented(aist30):
    """A dozen real-motion variants (rotations about Y, mirror images), 30 fps."""
    out = {}
    for name, track in aist30.items():
        out[name] = track
        out[name + "_rot"] = rotate_y(track, 70)
        if len(out) < 12:
            out[name + "_mir"] = mirror(track)
    return out


def write_tracks(folder: Path, tracks: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, track in tracks.items():
        np.save(folder / f"{name}.npy", track)
    return folder


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12)))


# ---------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("fixed", [False, True])
def test_vectorised_features_equal_loop_reference_on_real_motion(aist60, fixed):
    names = sorted(aist60) if not fixed else sorted(aist60)[:2]
    for name in names:
        track = aist60[name] - aist60[name][:1, :1]
        assert rel_err(kinetic_features(track, fixed=fixed), loop.loop_kinetic(track, fixed)) <= 1e-6
        np.testing.assert_array_equal(geometric_features(track, fixed=fixed), loop.loop_geometric(track, fixed))


def test_fixed_variant_changes_features(aist60):
    track = aist60[sorted(aist60)[0]]
    track = track - track[:1, :1]
    assert not np.allclose(kinetic_features(track), kinetic_features(track, fixed=True))
    # the true second difference is tiny next to the bugged term, which carries p/dt^2
    assert kinetic_features(track, fixed=True)[2::3].max() < kinetic_features(track)[2::3].max()


def test_set_metrics_equal_loop_reference(aist60):
    rng = np.random.default_rng(3)
    tracks = [t - t[:1, :1] for t in aist60.values()]
    feats_k = np.stack([kinetic_features(t) for t in tracks])
    feats_g = np.stack([geometric_features(t) for t in tracks])
    # a pool and a prediction set of perturbed copies of the real features
    gt_k = (feats_k[rng.integers(0, 5, 60)] * rng.uniform(0.7, 1.3, (60, 72))).astype(np.float32)
    gt_g = np.clip(feats_g[rng.integers(0, 5, 60)] + rng.normal(0, 0.05, (60, 32)), 0, 1).astype(np.float32)
    pr_k, pr_g = gt_k[:12] * np.float32(1.1), gt_g[12:24]
    mine = feature_metrics(pr_k, pr_g, gt_k, gt_g)
    gkn, pkn = loop.loop_normalize(gt_k, pr_k)
    ggn, pgn = loop.loop_normalize(gt_g, pr_g)
    ref = {"fid_k": loop.loop_fid(pkn, gkn), "fid_g": loop.loop_fid(pgn, ggn), "div_k": loop.loop_diversity(pkn),
           "div_g": loop.loop_diversity(pgn), "div_k_gt": loop.loop_diversity(gkn),
           "div_g_gt": loop.loop_diversity(ggn)}
    for key, value in ref.items():
        assert rel_err(mine[key], value) <= 1e-6, key


def test_bas_and_pfc_equal_loop_reference(aist60):
    for track in aist60.values():
        beats = np.arange(7, len(track) - 1, 23)
        assert rel_err(beat_align_score(beats, motion_beats(track)), loop.loop_bas(track, beats)) <= 1e-9
        assert rel_err(pfc_score(track), loop.loop_pfc(track)) <= 1e-9


def test_pfc_is_edges_formula_on_z_up_30fps(aist60):
    """Our Y-up/60-fps PFC equals EDGE's Z-up/30-fps formula applied to the converted track."""
    track = aist60[sorted(aist60)[1]]
    z = to_z_up(track[::2])  # what EDGE would hold: Z up, 30 fps
    dt = 1 / 30
    root_a = np.diff(np.diff(z[:, 0], axis=0) / dt, axis=0) / dt
    root_a[:, 2] = np.maximum(root_a[:, 2], 0)
    root_a = np.linalg.norm(root_a, axis=-1)
    root_a /= root_a.max()
    feet = z[:, [7, 10, 8, 11]][:, :, :2]
    foot_v = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1)
    expected = (np.minimum(foot_v[:, 0], foot_v[:, 1]) * np.minimum(foot_v[:, 2], foot_v[:, 3]) * root_a).mean()
    assert pfc_score(track) == pytest.approx(expected * 1e4, rel=1e-12)


def test_cmu_salsa_bvh_through_the_pipeline(tmp_path, aist60):
    """Real salsa mocap (BVH, 120 fps, read by e3d2_core.io): exact features, and a turned copy scores the same."""
    bvh = Path(__file__).parent / "data" / "cmu_salsa_60_01_clip.bvh"
    track = load_track(bvh)
    assert track.source_fps == 120 and track.joints.shape == (240, 24, 3)
    rel = track.joints - track.joints[:1, :1]
    assert rel_err(kinetic_features(rel), loop.loop_kinetic(rel)) <= 1e-6
    np.testing.assert_array_equal(geometric_features(rel), loop.loop_geometric(rel))
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / bvh.name).write_bytes(bvh.read_bytes())
    np.save(pred / "salsa_turned.npy", rotate_y(track.joints, 120) + np.array([1.0, 0.0, 2.0]))
    result = evaluate(pred, write_tracks(tmp_path / "gt", aist60), fps=60)
    assert result["div_k"] < 1e-5 * result["div_k_gt"] and result["div_g"] < 1e-5 * result["div_g_gt"]
    assert result["fid_k"] > 1 and result["pfc"] > 0 and result["n_pred"] == 2
    # five GT dances leave some Boolean templates constant: reported, not hidden
    assert any("constant over the GT pool" in note for note in result["notes"])


# ---------------------------------------------------------------------------------------- known answers
def test_identical_sets_give_zero_fid(tmp_path, aist30):
    tracks = augmented(aist30)
    folder = write_tracks(tmp_path / "set", tracks)
    result = evaluate(folder, folder, fps=30)
    assert abs(result["fid_k"]) < 1e-3 and abs(result["fid_g"]) < 1e-3
    assert result["div_k"] == pytest.approx(result["div_k_gt"], rel=1e-9)
    assert result["div_g"] == pytest.approx(result["div_g_gt"], rel=1e-9)
    assert result["n_pred"] == result["n_gt"] == len(tracks) == 14 and result["div_k"] > 1


def test_translated_track_gives_same_metrics(tmp_path, aist30):
    tracks = augmented(aist30)
    gt = write_tracks(tmp_path / "gt", tracks)
    pred = dict(list(tracks.items())[:6])
    base = evaluate(write_tracks(tmp_path / "a", pred), gt, fps=30)
    name = next(iter(pred))
    pred[name] = pred[name] + np.array([3.0, 0.25, -2.0])
    moved = evaluate(write_tracks(tmp_path / "b", pred), gt, fps=30)
    for key in ("fid_k", "fid_g", "div_k", "div_g", "pfc"):
        assert moved[key] == pytest.approx(base[key], rel=1e-6, abs=1e-9), key
    # the raw kinetic function is not translation invariant (the kept precedence bug)
    raw = resample_positions(tracks[name], 30.0)
    assert not np.allclose(kinetic_features(raw), kinetic_features(raw + np.array([3.0, 0.25, -2.0])))


def test_bas_is_one_when_music_beats_sit_on_motion_beats(tmp_path, aist30, aist60):
    pred = write_tracks(tmp_path / "pred", aist30)
    music = tmp_path / "music"
    music.mkdir()
    for name, track in aist60.items():
        np.save(music / f"{name}.npy", motion_beats(track))
    result = evaluate(pred, pred, music=music, fps=30)
    assert result["bas"] == pytest.approx(1.0, abs=1e-12) and result["n_bas"] == 5


def test_bas_known_shift_has_closed_form(aist60):
    track = aist60[sorted(aist60)[0]]
    dance = motion_beats(track)
    assert np.diff(dance).min() > 4  # a 2-frame shift keeps each beat's nearest motion beat
    music = dance[1:-1] + 2
    assert beat_align_score(music, dance) == pytest.approx(np.exp(-4 / 18), rel=1e-12)
    mixed = np.concatenate([dance[1:-1] + 1, dance[1:-1]])
    assert beat_align_score(mixed, dance) == pytest.approx((np.exp(-1 / 18) + 1) / 2, rel=1e-12)


def test_music_matched_by_aist_music_id(tmp_path, aist30, aist60):
    pred = write_tracks(tmp_path / "pred", aist30)
    music = tmp_path / "music"
    music.mkdir()
    for music_id in ("mBR0", "mJS3", "mKR2", "mLH4"):
        np.save(music / f"{music_id}.npy", np.arange(5, 290, 20))
    result = evaluate(pred, pred, music=music, fps=30)
    expected = np.mean([beat_align_score(np.arange(5, 290, 20), motion_beats(t)) for t in aist60.values()])
    assert result["bas"] == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------- formats
def test_motion_npz_and_pickle_formats(tmp_path, aist30):
    t = np.arange(90) / 30.0
    poses = np.zeros((90, 24, 3), np.float32)
    poses[:, 16, 2] = 0.8 * np.sin(2 * np.pi * t)
    trans = np.stack([0.1 * t, 0.95 + 0.02 * np.sin(4 * np.pi * t), 0.5 * t], -1)
    motion = Motion(poses, trans, 30.0)
    motion.save(tmp_path / "m.npz")
    track = load_track(tmp_path / "m.npz")
    np.testing.assert_allclose(track.joints, motion.resample(60).joints(), atol=1e-6)
    assert track.source_fps == 30 and not track.fps_assumed

    joints = aist30[sorted(aist30)[0]]
    np.save(tmp_path / "bailando.npy", {"pred_position": joints.reshape(-1, 72)})
    with pytest.raises(E3D2Error, match="--format bailando"):
        load_track(tmp_path / "bailando.npy")
    bail = load_track(tmp_path / "bailando.npy", fmt="bailando", fps=30)  # --fps never overrides a format's rate
    np.testing.assert_allclose(bail.joints, joints)
    assert bail.source_fps == 60 and not bail.fps_assumed

    with open(tmp_path / "edge.pkl", "wb") as handle:
        pickle.dump({"smpl_poses": np.zeros((len(joints), 72)), "full_pose": to_z_up(joints).astype(np.float32)},
                    handle)
    edge = load_track(tmp_path / "edge.pkl", fmt="edge")
    np.testing.assert_allclose(edge.joints, resample_positions(joints, 30.0), atol=1e-6)
    assert edge.source_fps == 30

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump({"full_pose": Evil()}, handle)
    with pytest.raises(E3D2Error, match="refusing to load builtins.print"):
        load_track(tmp_path / "evil.pkl", fmt="edge")


def test_assumed_fps_is_reported(tmp_path, aist30):
    folder = write_tracks(tmp_path / "set", aist30)
    result = evaluate(folder, folder)
    assert any("assumed 60 fps" in note for note in result["notes"])
    assert not any("assumed" in note for note in evaluate(folder, folder, fps=30)["notes"])


# ---------------------------------------------------------------------------------------- degenerate input
def test_clear_errors_for_degenerate_input(tmp_path, aist30):
    good = write_tracks(tmp_path / "good", aist30)
    one = write_tracks(tmp_path / "one", dict([next(iter(aist30.items()))]))
    with pytest.raises(E3D2Error, match="at least two dances"):
        evaluate(good, one, fps=30)
    with pytest.raises(E3D2Error, match="feature windows need at least 5"):
        evaluate(write_tracks(tmp_path / "short", {k: v[:2] for k, v in aist30.items()}), good, fps=30)
    nan = {k: v.copy() for k, v in aist30.items()}
    next(iter(nan.values()))[10, 3, 1] = np.nan
    with pytest.raises(E3D2Error, match=r"NaN or infinite values \(first at frame 10\)"):
        evaluate(write_tracks(tmp_path / "nan", nan), good, fps=30)
    with pytest.raises(E3D2Error, match=r"\(T, 72\) or \(T, 24, 3\) .*got \(150, 24, 2\)"):
        evaluate(write_tracks(tmp_path / "shape", {k: v[..., :2] for k, v in aist30.items()}), good, fps=30)
    with pytest.raises(E3D2Error, match="no such folder"):
        evaluate(tmp_path / "missing", good)
    music = tmp_path / "music"
    music.mkdir()
    np.save(music / "unrelated.npy", np.arange(10))
    with pytest.raises(E3D2Error, match="no music for this dance"):
        evaluate(good, good, music=music, fps=30)


def test_song_without_beats_gives_clear_message(tmp_path, aist30):
    good = write_tracks(tmp_path / "good", aist30)
    music = tmp_path / "music"
    music.mkdir()
    for name in aist30:
        np.save(music / f"{name}.npy", np.array([], dtype=np.int64))
    with pytest.raises(E3D2Error, match="no music beats within the dance's first 298 frames"):
        evaluate(good, good, music=music, fps=30)
    for name in aist30:  # beats only after the dance ends count as none
        np.save(music / f"{name}.npy", np.array([400, 460]))
    with pytest.raises(E3D2Error, match="no music beats"):
        evaluate(good, good, music=music, fps=30)


# ---------------------------------------------------------------------------------------- cache and CLI
def test_gt_cache_reused_and_invalidated(tmp_path, aist30):
    tracks = augmented(aist30)
    gt = write_tracks(tmp_path / "gt", tracks)
    pred = write_tracks(tmp_path / "pred", dict(list(tracks.items())[:4]))
    cache = tmp_path / "gt_cache.npz"
    first = evaluate(pred, gt, fps=30, gt_cache=cache)
    assert cache.is_file() and any("computing GT features" in n for n in first["notes"])
    second = evaluate(pred, gt, fps=30, gt_cache=cache)
    assert any("loaded from cache" in n for n in second["notes"])
    assert {k: second[k] for k in ("fid_k", "fid_g", "div_k_gt")} == {k: first[k] for k in ("fid_k", "fid_g",
                                                                                             "div_k_gt")}
    (gt / f"{next(iter(tracks))}.npy").unlink()
    third = evaluate(pred, gt, fps=30, gt_cache=cache)
    assert any("changed" in n for n in third["notes"]) and third["n_gt"] == len(tracks) - 1
    assert third["fid_k"] != first["fid_k"]
    fixed = evaluate(pred, gt, fps=30, gt_cache=cache, fixed=True)  # other settings: recomputed, labelled
    assert any("changed" in n for n in fixed["notes"]) and fixed["variant"].startswith("fixed")
    cache.write_bytes(b"not a zip file")
    again = evaluate(pred, gt, fps=30, gt_cache=cache, fixed=True)
    assert any("unreadable" in n for n in again["notes"]) and again["fid_k"] == fixed["fid_k"]
    assert any("loaded from cache" in n for n in evaluate(pred, gt, fps=30, gt_cache=cache, fixed=True)["notes"])


@pytest.fixture
def evaluate_cli(monkeypatch):
    assert cli.COMMANDS["evaluate"] == "e3d2_core.commands.evaluate"
    monkeypatch.setattr(cli, "COMMANDS", {"evaluate": cli.COMMANDS["evaluate"]})  # only this command's imports
    return cli.main


def test_cli_json_table_and_errors(tmp_path, aist30, evaluate_cli, capsys):
    folder = write_tracks(tmp_path / "set", augmented(aist30))
    assert evaluate_cli(["evaluate", "--pred", str(folder), "--gt", str(folder), "--fps", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("fid_k", "fid_g", "div_k", "div_g", "bas", "pfc", "div_k_gt", "div_g_gt", "n_pred", "n_gt"):
        assert key in out
    assert out["bas"] is None and out["pfc"] > 0 and out["variant"] == "reference"

    assert evaluate_cli(["evaluate", "--pred", str(folder), "--gt", str(folder), "--crop", "200"]) == 0
    captured = capsys.readouterr()
    assert "FID_k" in captured.out and "Div_g (GT pool)" in captured.out and "first 200 frames" in captured.out
    assert "assumed 60 fps" in captured.err

    assert evaluate_cli(["evaluate", "--pred", str(tmp_path / "nope"), "--gt", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such folder" in err


# ---------------------------------------------------------------------------------------- audio beats
def test_bas_from_audio_files(tmp_path, aist30, aist60, monkeypatch):
    """--music with real audio (the CC0 amen loop tiled to 5 s): beats via e3d2_core.audio.music_beats."""
    import soundfile

    from e3d2_core.audio import music_beats

    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    samples, rate = soundfile.read(Path(__file__).parent / "data" / "loop_amen.flac")
    music = tmp_path / "music"
    music.mkdir()
    song = music / "mBR0.wav"  # matched by AIST++ music id; the others by stem
    soundfile.write(song, np.concatenate([samples] * 3), rate)
    for name in sorted(aist30)[2:]:
        (music / f"{name}.wav").write_bytes(song.read_bytes())
    pred = write_tracks(tmp_path / "pred", aist30)
    result = evaluate(pred, pred, music=music, fps=30)
    beats = music_beats(song, fps=60)
    assert len(beats) >= 4
    expected = np.mean([beat_align_score(beats[beats < len(t) - 1], motion_beats(t)) for t in aist60.values()])
    assert result["bas"] == pytest.approx(expected, rel=1e-12) and 0 < result["bas"] < 1

    silent = tmp_path / "silent"
    silent.mkdir()
    for name in aist30:
        soundfile.write(silent / f"{name}.wav", np.zeros(rate * 5), rate)
    with pytest.raises(E3D2Error, match="no music beats.*\\.npy of beat frame indices"):
        evaluate(pred, pred, music=silent, fps=30)


# ---------------------------------------------------------------------------------------- one dance
def test_one_dance_gets_bas_and_pfc_and_a_note_on_fid(tmp_path, aist30, aist60, evaluate_cli, capsys):
    folder = write_tracks(tmp_path / "set", aist30)
    music = tmp_path / "music"
    music.mkdir()
    for name, track in aist60.items():
        np.save(music / f"{name}.npy", np.arange(7, len(track) - 1, 23))
    name = sorted(aist30)[0]
    beats = np.arange(7, len(aist60[name]) - 1, 23)
    np.save(tmp_path / "song.npy", beats)
    single = evaluate(folder / f"{name}.npy", fps=30, music=tmp_path / "song.npy")     # one file, no GT pool
    assert single["bas"] == pytest.approx(beat_align_score(beats, motion_beats(aist60[name])), rel=1e-9)
    assert single["pfc"] == pytest.approx(pfc_score(aist60[name]), rel=1e-9)
    assert all(single[k] is None for k in ("fid_k", "fid_g", "div_k", "div_g"))
    assert single["n_pred"] == 1 and single["n_bas"] == 1
    assert any("need at least two predictions" in note for note in single["notes"])
    # a folder holding one dance, with a GT pool, says the same
    one = write_tracks(tmp_path / "one", {name: aist30[name]})
    assert evaluate(one, folder, fps=30, music=music)["bas"] == pytest.approx(single["bas"])
    # the CLI: a table with '-' for FID/Div and the note on stderr, exit 0
    assert evaluate_cli(["evaluate", "--pred", str(folder / f"{name}.npy"), "--music", str(tmp_path / "song.npy"),
                         "--fps", "30"]) == 0
    captured = capsys.readouterr()
    rows = dict(line.split(None, 1) for line in captured.out.splitlines()[:6])
    assert rows["FID_k"].strip() == "-" and rows["BAS"].strip() == f"{single['bas']:.4f}"
    assert "FID_k, FID_g, Div_k and Div_g compare sets of dances" in captured.err
