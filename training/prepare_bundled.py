"""Build the bundled training set from the real data folder: real dance paired with real permissively licensed music.

    python training/fetch_data.py -o data/real                    (download the public sources, check SHA-256)
    python training/prepare_bundled.py -o data/bundled            (the default recipe; ~15 minutes on 2 cores)
    python training/prepare_bundled.py --add-beats data/bundled   (give older shards exact music beats, in place)

The data folder is ``--data``, else ``$E3D2_DATA``, else ``data/real``; it is checked file by file against
``training/data_manifest.json`` first (a missing or altered file is named, and nothing is written).

Sources (licences: docs/training.md), each read at its true frame rate (``MOTION_SOURCES``):
* motion: CMU salsa (subjects 60 lead and 61 follow, BVH, 60 fps although the files say 120), CMU modern dance
  (subject 05, iClone ``CC_Base_*`` rig, BVH, 60 fps), CMU breakdance (subject 85, ``Neo_*`` rig, FBX read by
  Blender's importer, 30 fps), all retargeted to SMPL, and the five AIST++ joint slices (positions; IK, 30 fps);
* music: the CC BY / public-domain songs, the CC0 loops (loops and songs shorter than ``--min-song`` seconds are
  tiled, a loop being a steady pulse) and the music library (UFO:AI and OpenClonk soundtracks, Freedoom MIDI
  renders with exact beats), less ``EVAL_SONGS``, which only evaluation uses.

Splits. Motion is split by clip group, so takes of one performance (salsa partners 60_k and 61_k) or of one
repeated phrase (modern 14-15, 16-17, 18-20) always land on the same side (``SPLIT_GROUPS``): test = salsa trials
14, 15, modern 16-17, breakdance 85_04; val = salsa trial 13, modern 14-15; train = the rest. Music: the held-out
song (default ``Kevin_MacLeod_-_Vibe_Ace``, also the demo song) is used by the test split only; train and val
pair their motion with the remaining songs (val is unseen dance on seen music).

Pairing (:mod:`e3d2_core.training.beat_align`): the recordings have no music, and salsa steps are events, not a
steady pulse, so each clip's kinematic beats are chained onto a song's beats by dynamic programming with the local
speed change bounded to 0.7-1.4x, and the motion is time-warped onto the song's clock (slerp resampling). Each
clip is paired with the ``--songs-per-clip`` songs it fits best (most matched beats per second of dance).
Training clips are also mirrored (``Motion.mirror``). ``report.json`` gives minutes per split and the alignment
quality: the median distance from each kinematic beat to the nearest music beat before (clip placed at the
chain's first matched beat, unwarped) and after warping.

Music beats: every sequence stores its song's beats at the motion frame rate (``e3d2_core.audio.tracked_beats``,
60 fps by default) inside the paired segment, on the sequence's clock (the warped motion runs on the song's clock),
so BAS is computed with exact beats. ``--add-beats DIR`` adds them to shards written before they existed: each
sequence's segment is found again by matching its music rows against the song's features.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3d2_core.errors import E3D2Error  # noqa: E402
from e3d2_core.fileio import atomic_open, atomic_path  # noqa: E402
from e3d2_core.motion import Motion  # noqa: E402
from e3d2_core.training.beat_align import (Alignment, align_events, kinematic_beats,  # noqa: E402
                                           nearest_distance, warp_motion)
from e3d2_core.training.data import Sequence, code_ratio, write_shard  # noqa: E402

# the real data folder (training/fetch_data.py fills it): $E3D2_DATA, else data/real in the repository
SHARED = Path(os.environ.get("E3D2_DATA") or Path(__file__).resolve().parents[1] / "data" / "real")
DATA_GROUPS = "music,loops,mocap,aistpp_joints,music_library"
HELD_OUT_SONG = "Kevin_MacLeod_-_Vibe_Ace"
# Music-library tracks kept for evaluation only (never paired, never in RL): six MIDI renders with exact beats at
# 70-145 bpm, and two real recordings.
EVAL_SONGS = ("D_E1M5", "D_E1M7", "D_RUNNI2", "D_BUNNY", "D_DOOM2", "D_EVIL", "van_theme", "Offshore")
MUSIC_FOLDERS = (("music", "*.ogg"), ("loops", "*.flac"), ("music_library/ufoai", "*.ogg"),
                 ("music_library/openclonk", "*.ogg"), ("music_library/freedoom", "*.ogg"))
MIN_COVERAGE = 0.5          # a pairing must warp at least this fraction of the clip


@dataclass
class Song:
    name: str
    path: Path
    beats: np.ndarray        # seconds
    features: np.ndarray     # (N, D) at the code rate
    duration: float
    beat_frames: np.ndarray  # (K,) int64 beats at the motion fps (the BAS beats)


@dataclass
class Clip:
    name: str
    group: str               # the performance (trial) for CMU, the sequence for AIST++
    motion: Motion
    beats: np.ndarray        # seconds


def song_name(path: Path) -> str:
    name = path.name
    for suffix in (".hq.ogg", ".ogg", ".flac", ".wav"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def tiled_audio(path: Path, min_seconds: float, out_dir: Path) -> Path:
    """``path`` itself when long enough, else a wav of it repeated to ``min_seconds`` (written once)."""
    import soundfile as sf
    from e3d2_core.audio import audio_duration, load_audio
    duration = audio_duration(path)
    if duration >= min_seconds:
        return path
    reps = int(np.ceil(min_seconds / duration))
    target = out_dir / f"{song_name(path)}_x{reps}.wav"
    if not target.is_file():
        y, sr = load_audio(path)
        with atomic_path(target) as tmp:
            sf.write(tmp, np.tile(y, reps), sr)
    return target


def exact_beats(path: Path) -> np.ndarray | None:
    """Beat times (s) from ``<stem>.beats.txt`` beside the audio (a MIDI render's tempo map), if there is one."""
    text = path.with_name(path.stem + ".beats.txt")
    return np.loadtxt(text, comments="#", ndmin=1) if text.is_file() else None


def music_files(shared: Path) -> list[Path]:
    return [p for folder, pattern in MUSIC_FOLDERS for p in sorted((shared / folder).glob(pattern))]


def load_song(path: Path, *, fps: float, kind: str, min_seconds: float, audio_dir: Path) -> Song | None:
    """A song's code-rate features and its beats at the motion rate: exact ones where the music library has
    them (the tracker halves or shifts some of those renders), else librosa's (the ones BAS reads)."""
    from e3d2_core.audio import extract_features
    known = exact_beats(path)
    source = path if known is not None else tiled_audio(path, min_seconds, audio_dir)
    if known is not None:
        music = extract_features(source, fps=fps / 8, kind=kind, beat_times=known)
        beat_frames = np.unique(np.round(known[known < music.duration] * fps).astype(np.int64))
    else:
        beat_frames = extract_features(source, fps=fps, kind="compact").beat_frames
        music = extract_features(source, fps=fps / 8, kind=kind)
    if len(beat_frames) < 8:
        return None                                             # beatless (a drone): nothing to dance to
    return Song(song_name(path), source, beat_frames / fps, music.features, music.duration,
                np.asarray(beat_frames, np.int64))


def _load_song_job(args):
    path, kwargs = args
    return load_song(path, **kwargs)


def segment_beats(song: Song, first_row: int, frames: int, ratio: int) -> np.ndarray:
    """The song's beats inside ``[first_row * ratio, first_row * ratio + frames)`` on the segment's clock."""
    shifted = song.beat_frames - first_row * ratio
    return shifted[(shifted >= 0) & (shifted < frames)]


@dataclass(frozen=True)
class MotionSource:
    name: str
    folder: str              # inside the data folder
    pattern: str
    fps: float               # the true capture/playback rate, whatever the files say
    why: str                 # where that rate comes from


# Every motion source and its true frame rate, with the evidence. Files that misstate their rate are read at
# the rate given here (``load_motion_file(fps=...)`` overrides the file's).
MOTION_SOURCES = (
    MotionSource("cmu_salsa", "mocap/cmu_salsa", "*.bvh", 60.0,
                 "CMU's trial listing gives 60 fps for every trial of subjects 60 and 61; the converted BVH files "
                 "say Frame Time 0.008333 (120 fps), which plays the salsa at double speed"),
    MotionSource("cmu_modern", "mocap/cmu_modern", "*.bvh", 60.0,
                 "iClone re-export of CMU subject 05: Frame Time 0.016667, frame counts equal CMU's 60-fps column"),
    MotionSource("cmu_breakdance", "mocap/cmu_breakdance", "*.fbx", 30.0,
                 "keijiro/CMUMocap FBX of CMU subject 85: TimeMode 30 fps, keys on a 1/30 s grid"),
    MotionSource("aistpp", "aistpp_joints", "*.csv", 30.0, "AIST++ joint slices are 30 fps"),
)
# Clip groups: takes that share a performance or repeat the same phrase stay on one side of every split.
MODERN_GROUPS = {"09": "09-10", "10": "09-10", "14": "14-15", "15": "14-15", "16": "16-17", "17": "16-17",
                 "18": "18-20", "19": "18-20", "20": "18-20"}
SPLIT_GROUPS = {"test": {"cmu_trial_14", "cmu_trial_15", "cmu_modern_16-17", "cmu_break_85_04"},
                "val": {"cmu_trial_13", "cmu_modern_14-15"}}


def _clip_files(shared: Path):
    """(name, group, source, path) of every motion clip in the data folder."""
    for source in MOTION_SOURCES:
        for path in sorted((shared / source.folder).glob(source.pattern)):
            if source.name == "cmu_salsa":
                subject, trial = re.match(r"(\d+)_(\d+)", path.stem).groups()
                yield f"cmu_{subject}_{trial}", f"cmu_trial_{trial}", source, path
            elif source.name == "cmu_modern":
                trial = re.match(r"\d+_(\d+)", path.stem).group(1)
                yield f"cmu_modern_{trial}", f"cmu_modern_{MODERN_GROUPS.get(trial, trial)}", source, path
            elif source.name == "cmu_breakdance":
                yield f"cmu_break_{path.stem}", f"cmu_break_{path.stem}", source, path
            else:
                name = "aist_" + path.stem.removeprefix("true_")
                yield name, name, source, path


def _read_clip(source: MotionSource, path: Path) -> Motion:
    from e3d2_core.io import load_motion_file
    if source.pattern == "*.fbx":
        return load_fbx_motion(path, fps=source.fps)
    return load_motion_file(path, fps=source.fps, up="z" if source.name == "aistpp" else None)


def load_fbx_motion(path: Path, *, fps: float) -> Motion:
    """An FBX clip through Blender's importer (a child process running training/fbx_joints.py), on SMPL."""
    import subprocess
    import tempfile
    from e3d2_core.io.floor import floor_height
    from e3d2_core.io.ik import inverse_kinematics
    from e3d2_core.io.retarget import NEO, leg_scale, smpl_targets
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tracks.npz"
        done = subprocess.run([sys.executable, str(Path(__file__).with_name("fbx_joints.py")), str(path), "-o",
                               str(out)], capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            raise E3D2Error(f"Blender's FBX importer could not read it: {done.stderr.strip()[-300:]}", path=path)
        with np.load(out) as data:
            names, heads, tails = [str(n) for n in data["names"]], data["heads"], data["tails"]
    tracks = {n: heads[:, i] for i, n in enumerate(names)} | {f"{n}/end": tails[:, i] for i, n in enumerate(names)}
    targets = _trim_still(smpl_targets(NEO, tracks))
    poses, trans = inverse_kinematics(targets * leg_scale(targets[0]))
    motion = Motion(poses, trans, fps, {"source": path.name, "format": "fbx", "source_fps": fps})
    trans = motion.trans.copy()
    trans[:, 1] -= floor_height(motion.joints())
    return motion.copy(trans=trans)


def _trim_still(targets: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Drop the held first/last poses (a player holds the first key before the clip's motion starts; the root
    may still drift there, so the body's shape, relative to the pelvis, decides). ``tol``: metres per frame."""
    shape = targets - targets[:, :1]
    moving = np.flatnonzero(np.abs(np.diff(shape, axis=0)).max(axis=(1, 2)) > tol)
    return targets if len(moving) == 0 else targets[moving[0]: moving[-1] + 2]


def load_clips(shared: Path, fps: float, max_seconds: float | None, only: set[str] | None) -> list[Clip]:
    out = []
    for name, group, source, path in _clip_files(shared):
        if only is not None and name not in only:
            continue
        motion = _read_clip(source, path).resample(fps)
        if max_seconds:
            motion = motion.trim(0, int(max_seconds * fps))
        out.append(Clip(name, group, motion, kinematic_beats(motion.joints(), fps) / fps))
    return out


def split_of(clip: Clip) -> str:
    for split, groups in SPLIT_GROUPS.items():
        if clip.group in groups:
            return split
    return "train"


def pair(clip: Clip, song: Song, fps: float) -> tuple[Sequence, dict] | None:
    """Warp ``clip`` onto ``song``; None when too little of it fits. Returns the sequence and its stats."""
    try:
        alignment = align_events(clip.beats, song.beats)
    except E3D2Error:
        return None
    music_fps = fps / 8
    ratio = code_ratio(fps, music_fps)
    rates = alignment.rates
    # the clip's whole extent on the song's clock (end links' rates beyond the matched pairs), inside the song
    start = max(0.0, alignment.music_times[0] - alignment.motion_times[0] * rates[0])
    end = min(song.duration, alignment.music_times[-1] + (clip.motion.duration - alignment.motion_times[-1])
              * rates[-1])
    first_row = int(np.ceil(start * music_fps - 1e-9))
    steps = min(int(np.floor((end - first_row / music_fps) * music_fps)), len(song.features) - first_row)
    matched = alignment.motion_times[-1] - alignment.motion_times[0]
    if steps < 2 or matched < MIN_COVERAGE * clip.motion.duration:
        return None
    warped = warp_motion(clip.motion, alignment, fps=fps, start=first_row / music_fps, frames=steps * ratio)
    seq = Sequence(f"{clip.name}@{song.name}", song.name, warped.poses, warped.trans,
                   song.features[first_row:first_row + steps].astype(np.float32),
                   segment_beats(song, first_row, steps * ratio, ratio))
    return seq, {"alignment": alignment, "start": first_row / music_fps, "warped": warped,
                 "matched_per_second": len(alignment) / max(clip.motion.duration, 1e-6)}


def beat_errors(clip: Clip, song: Song, info: dict, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances (s) from kinematic beats to the nearest music beat over the matched span: unwarped, warped."""
    a: Alignment = info["alignment"]
    inside = (clip.beats >= a.motion_times[0]) & (clip.beats <= a.motion_times[-1])
    before = nearest_distance(clip.beats[inside] - a.motion_times[0] + a.music_times[0], song.beats)
    warped_beats = info["start"] + kinematic_beats(info["warped"].joints(), fps) / fps
    span = (warped_beats >= a.music_times[0]) & (warped_beats <= a.music_times[-1])
    after = nearest_distance(warped_beats[span], song.beats)
    return before, after


def prepare(out: Path, *, shared: Path = SHARED, fps: float = 60.0, kind: str = "compact",
            held_out: str = HELD_OUT_SONG, songs_per_clip: int = 4, min_song: float = 40.0,
            max_clip_seconds: float | None = None, clips: set[str] | None = None, songs: set[str] | None = None,
            mirror: bool = True, progress: bool = True, workers: int = 2, verify: bool = True) -> dict:
    """Write ``out/{train,val,test}.npz`` and ``out/report.json``; return the report. ``verify``: check the
    data folder against the manifest first (every missing or altered file is listed on stderr)."""
    if not (shared / "music").is_dir():
        raise E3D2Error("the data folder has no music/; fetch it with python training/fetch_data.py -o "
                        f"{shared}", path=shared)
    if verify:
        from training.fetch_data import check_data_folder
        check_data_folder(shared, groups=DATA_GROUPS)
    audio_paths = [p for p in music_files(shared) if song_name(p) not in EVAL_SONGS]
    if songs is not None:
        audio_paths = [p for p in audio_paths if song_name(p) in songs or song_name(p) == held_out]
    if held_out not in {song_name(p) for p in audio_paths}:
        raise E3D2Error(f"held-out song '{held_out}' is not among the data folder's music", path=shared / "music")
    iterate = _progress(progress)
    from e3d2_core.paths import cache_dir
    tiles = cache_dir() / "tiled_audio"     # loops repeated to song length: derived data, kept in the cache
    kwargs = {"fps": fps, "kind": kind, "min_seconds": min_song, "audio_dir": tiles}
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(audio_paths)))) as pool:
        loaded = list(iterate(pool.map(_load_song_job, [(p, kwargs) for p in audio_paths]), "songs"))
    all_songs = [s for s in loaded if s is not None]
    test_songs = [s for s in all_songs if s.name == held_out]
    train_songs = [s for s in all_songs if s.name != held_out]
    all_clips = load_clips(shared, fps, max_clip_seconds, clips)
    if not all_clips:
        raise E3D2Error("no motion clips selected", path=shared)
    report = {"fps": fps, "music_fps": fps / 8, "music_kind": kind, "held_out_song": held_out,
              "eval_songs": list(EVAL_SONGS),
              "motion_sources": {m.name: {"fps": m.fps, "why": m.why} for m in MOTION_SOURCES},
              "splits": {}, "pairs": []}
    by_split: dict[str, list[Sequence]] = {"train": [], "val": [], "test": []}
    errors = {split: ([], []) for split in by_split}
    for clip in iterate(all_clips, "pairing"):
        split = split_of(clip)
        candidates = test_songs if split == "test" else train_songs
        paired = [(song, p) for song in candidates if (p := pair(clip, song, fps)) is not None]
        paired.sort(key=lambda sp: -sp[1][1]["matched_per_second"])
        for song, (seq, info) in paired[: 1 if split == "test" else songs_per_clip]:
            by_split[split].append(seq)
            before, after = beat_errors(clip, song, info, fps)
            errors[split][0].append(before)
            errors[split][1].append(after)
            report["pairs"].append({"split": split, "clip": clip.name, "song": song.name,
                                    "seconds": round(seq.num_frames / fps, 2), "matched_beats": len(info["alignment"]),
                                    "rate_min": round(float(info["alignment"].rates.min()), 3),
                                    "rate_max": round(float(info["alignment"].rates.max()), 3)})
            if mirror and split == "train":
                m = Motion(seq.poses, seq.trans, fps).mirror()
                name = seq.name.replace("@", "_mirror@", 1)
                by_split[split].append(Sequence(name, seq.music_id, m.poses, m.trans, seq.music, seq.beat_frames))
    for split, sequences in by_split.items():
        if not sequences:
            raise E3D2Error(f"no {split} clip could be paired with its music; nothing written", path=out)
    for split, sequences in by_split.items():
        groups = sorted({s.name.split("@")[0] for s in sequences})
        music = sorted({s.music_id for s in sequences})
        note = (f"e3d2 bundled data ({split}): CMU Graphics Lab mocap (salsa, modern dance, breakdance; "
                f"mocap.cs.cmu.edu; created with funding from NSF EIA-0196217) and AIST++ joint slices (CC BY 4.0, "
                f"Google), retargeted to SMPL at their true frame rates; time-warped onto CC BY / public-domain / "
                f"BSD songs and CC0 loops by kinematic-beat alignment (0.7-1.4x); "
                f"held-out song {held_out}; clips: {', '.join(groups)}; music: {', '.join(music)}")
        write_shard(out / f"{split}.npz", sequences, fps=fps, music_fps=fps / 8, music_kind=kind, split=split,
                    note=note)
        before = np.concatenate(errors[split][0]) if errors[split][0] else np.zeros(0)
        after = np.concatenate(errors[split][1]) if errors[split][1] else np.zeros(0)
        report["splits"][split] = {
            "sequences": len(sequences), "minutes": round(sum(s.num_frames for s in sequences) / fps / 60, 3),
            "unique_motion_minutes": round(sum(c.motion.duration for c in all_clips if split_of(c) == split) / 60, 3),
            "median_beat_error_ms_before": round(1000 * float(np.median(before)), 1) if len(before) else None,
            "median_beat_error_ms_after": round(1000 * float(np.median(after)), 1) if len(after) else None,
            "songs": music}
    with atomic_open(out / "report.json", "w") as handle:
        json.dump(report, handle, indent=2)
    return report


def find_segment(music: np.ndarray, features: np.ndarray, tol: float = 1e-4) -> int:
    """First row r with ``features[r:r + len(music)] == music`` (within ``tol``); -1 when there is none."""
    steps = len(music)
    if steps == 0 or steps > len(features) or music.shape[1] != features.shape[1]:
        return -1
    scale = tol * (1.0 + np.abs(music).max())
    starts = np.flatnonzero(np.abs(features[:len(features) - steps + 1] - music[0]).max(1) <= scale)
    for r in starts:
        if np.abs(features[r:r + steps] - music).max() <= scale:
            return int(r)
    return -1


def add_beats(folder: Path, *, shared: Path = SHARED, min_song: float = 40.0, progress: bool = True) -> dict:
    """Give every shard in ``folder`` exact music beats (``beat_frames``), in place; returns {split: beats}.

    Each sequence's song is found by its music id among the data folder's music and loops (tiled as the recipe tiles
    them, ``min_song``), and its segment by matching the sequence's music rows against the song's features.
    Every shard is checked before any is rewritten; each rewrite is atomic.
    """
    from e3d2_core.audio import extract_features
    from e3d2_core.paths import cache_dir
    from e3d2_core.training.data import add_beat_frames, load_shard
    paths = [folder / f"{split}.npz" for split in ("train", "val", "test") if (folder / f"{split}.npz").is_file()]
    if not paths:
        raise E3D2Error("no train/val/test .npz shards here", path=folder)
    audio = {song_name(p): p for p in sorted((shared / "music").glob("*.ogg")) + sorted((shared / "loops").glob("*.flac"))}
    tiles = cache_dir() / "tiled_audio"
    songs: dict[tuple[str, float, str], Song] = {}
    found: dict[Path, list[np.ndarray]] = {}
    for path in _progress(progress)(paths, "shards"):
        shard = load_shard(path)
        ratio = code_ratio(shard.fps, shard.music_fps)
        found[path] = []
        for seq in shard.sequences:
            key = (seq.music_id, shard.fps, shard.music_kind)
            if key not in songs:
                if seq.music_id not in audio:
                    raise E3D2Error(f"sequence {seq.name}: song '{seq.music_id}' is not among the data folder's music",
                                    path=shared)
                source = tiled_audio(audio[seq.music_id], min_song, tiles)
                beats = extract_features(source, fps=shard.fps, kind="compact").beat_frames
                music = extract_features(source, fps=shard.music_fps, kind=shard.music_kind)
                songs[key] = Song(seq.music_id, source, beats / shard.fps, music.features, music.duration,
                                  np.asarray(beats, np.int64))
            row = find_segment(np.asarray(seq.music), songs[key].features)
            if row < 0:
                raise E3D2Error(f"sequence {seq.name}: its music rows are not a segment of '{seq.music_id}' "
                                f"(different features or --min-song?); nothing rewritten", path=path)
            found[path].append(segment_beats(songs[key], row, seq.num_frames, ratio))
    counts = {}
    for path in paths:
        add_beat_frames(path, found[path])
        counts[path.stem] = int(sum(len(b) for b in found[path]))
    return counts


def _progress(enabled: bool):
    def iterate(items, desc):
        if not enabled:
            return items
        from tqdm.auto import tqdm
        return tqdm(items, desc=desc)
    return iterate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=Path("data/bundled"), help="output folder")
    parser.add_argument("--add-beats", type=Path, metavar="DIR",
                        help="only add exact music beats to the existing shards in DIR (in place), then exit")
    parser.add_argument("--data", "--shared", dest="shared", type=Path, default=SHARED,
                        help="the real data folder (default $E3D2_DATA, else data/real)")
    parser.add_argument("--fps", type=float, default=60.0, help="motion frame rate (code rate = fps / 8)")
    parser.add_argument("--kind", default="compact", choices=("compact", "bailando"), help="music features")
    parser.add_argument("--held-out", default=HELD_OUT_SONG, help="song kept for the test split")
    parser.add_argument("--songs-per-clip", type=int, default=4)
    parser.add_argument("--min-song", type=float, default=40.0, help="tile shorter songs/loops to this length (s)")
    parser.add_argument("--max-clip-seconds", type=float, help="crop every clip (quick builds)")
    parser.add_argument("--clips", help="comma-separated clip names (cmu_60_01, aist_gBR_..._slice0); default all")
    parser.add_argument("--songs", help="comma-separated training song names; default all")
    parser.add_argument("--no-mirror", action="store_true")
    args = parser.parse_args(argv)
    split = (lambda text: None if text is None else set(text.split(",")))
    if args.add_beats is not None:
        try:
            counts = add_beats(args.add_beats, shared=args.shared, min_song=args.min_song)
        except E3D2Error as err:
            print(f"prepare_bundled: error: {err}", file=sys.stderr)
            return 2
        print(json.dumps({"music_beats_added": counts}))
        return 0
    try:
        report = prepare(args.out, shared=args.shared, fps=args.fps, kind=args.kind, held_out=args.held_out,
                         songs_per_clip=args.songs_per_clip, min_song=args.min_song,
                         max_clip_seconds=args.max_clip_seconds, clips=split(args.clips), songs=split(args.songs),
                         mirror=not args.no_mirror)
    except E3D2Error as err:
        print(f"prepare_bundled: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report["splits"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
