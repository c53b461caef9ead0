"""Turn the official AIST++ download into e3d2 training shards (train.npz, val.npz, test.npz).

You fetch the data yourself (AIST++ annotations: CC BY 4.0, Google; AIST Dance DB music: see its terms):

    AISTPP/motions/<seq>.pkl          smpl_poses (N,72), smpl_trans (N,3), smpl_scaling (1,), 60 fps
    AISTPP/splits/crossmodal_{train,val,test}.txt
    AISTPP/ignore_list.txt            sequences with bad mocap (dropped from every split)
    MUSIC/<music id>.wav              e.g. mBR0.wav; a sequence's music id is its second-to-last '_' field

    python training/prepare_aistpp.py --aistpp AISTPP --music MUSIC -o data/aistpp [--fps 60] [--kind bailando]

Each sequence is read by the AIST++ importer (data-only unpickler; trans = pelvis position, Y up, floor at 0),
resampled to ``--fps`` when that differs from 60, and paired with its song's features at the code rate
``fps / 8`` (7.5 Hz for 60 fps; extracted at sr = 512 x code rate, not subsampled: docs/audio-and-preview.md).
Motion and music are cut to the shorter, in whole code steps (Bailando cuts training files the same way).
``--mirror`` adds each training sequence's mirror image (named ``<seq>_mirror``).

Every sequence also stores its song's beats at the motion frame rate (``e3d2_core.audio.tracked_beats``; motion
and music both start at the song's start), the exact beats BAS uses. Shards written before that get them with

    python training/prepare_aistpp.py --add-beats data/aistpp --music AIST_MUSIC
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3d2_core.errors import E3D2Error  # noqa: E402
from e3d2_core.training.data import Sequence, code_ratio, write_shard  # noqa: E402

SPLITS = ("train", "val", "test")
AIST_FPS = 60.0


def music_id(sequence_name: str) -> str:
    """``gBR_sBM_cAll_d04_mBR0_ch01`` -> ``mBR0`` (AIST++'s naming: the second-to-last field)."""
    parts = sequence_name.split("_")
    if len(parts) < 3 or not parts[-2].startswith("m"):
        raise E3D2Error(f"'{sequence_name}' is not an AIST++ sequence name (…_m<music>_ch<NN>)")
    return parts[-2]


def read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise E3D2Error("missing AIST++ list file", path=path)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def pair(motion, features: np.ndarray, ratio: int, name: str, mid: str,
         beats: np.ndarray | None = None) -> Sequence | None:
    """Cut motion (T frames) and music (rows at the code rate) to the same whole number of code steps.

    ``beats``: the song's beat frames at the motion fps (kept when inside the cut sequence)."""
    steps = min(motion.num_frames // ratio, len(features))
    if steps < 1:
        return None
    if beats is not None:
        beats = np.asarray(beats, np.int64)
        beats = beats[beats < steps * ratio]
    return Sequence(name, mid, motion.poses[:steps * ratio], motion.trans[:steps * ratio],
                    features[:steps].astype(np.float32), beats)


def prepare(aistpp: Path, music_dir: Path, out: Path, *, fps: float = AIST_FPS, kind: str = "bailando",
            mirror: bool = False, progress: bool = True) -> dict:
    """Write ``out/{train,val,test}.npz``; returns {split: {"sequences", "minutes"}}."""
    music_fps = fps / 8.0
    ratio = code_ratio(fps, music_fps)
    ignored = set(read_list(aistpp / "ignore_list.txt"))
    lists = {split: [n for n in read_list(aistpp / "splits" / f"crossmodal_{split}.txt") if n not in ignored]
             for split in SPLITS}
    for split, names in lists.items():   # check every input first: nothing is written when one is missing
        for name in names:
            pkl, wav = aistpp / "motions" / f"{name}.pkl", music_dir / f"{music_id(name)}.wav"
            for path, what in ((pkl, "motion file"), (wav, f"music {music_id(name)}")):
                if not path.is_file():
                    raise E3D2Error(f"sequence {name} of crossmodal_{split}.txt: missing {what}", path=path)
    from e3d2_core.audio import extract_features, tracked_beats
    from e3d2_core.io import load_motion_file

    features: dict[str, np.ndarray] = {}
    beats: dict[str, np.ndarray] = {}
    report = {}
    for split, names in lists.items():
        sequences = []
        iterator = names
        if progress:
            from tqdm.auto import tqdm
            iterator = tqdm(names, desc=f"aist++ {split}", unit="seq")
        for name in iterator:
            mid = music_id(name)
            pkl = aistpp / "motions" / f"{name}.pkl"
            if mid not in features:
                features[mid] = extract_features(music_dir / f"{mid}.wav", fps=music_fps, kind=kind).features
                beats[mid] = tracked_beats(music_dir / f"{mid}.wav", fps=fps)
            motion = load_motion_file(pkl, fmt="aistpp")
            if abs(motion.fps - fps) > 1e-6:
                motion = motion.resample(fps)
            versions = [(name, motion)] + ([(f"{name}_mirror", motion.mirror())] if mirror and split == "train"
                                           else [])
            for seq_name, m in versions:
                seq = pair(m, features[mid], ratio, seq_name, mid, beats[mid])
                if seq is not None:
                    sequences.append(seq)
        note = (f"AIST++ crossmodal_{split} ({len(names)} sequences after the ignore list; annotations CC BY 4.0, "
                f"Google, Li et al. ICCV 2021); music: AIST Dance DB; features '{kind}' at {music_fps:g} Hz"
                + ("; mirrored copies" if mirror and split == "train" else ""))
        if sequences:
            write_shard(out / f"{split}.npz", sequences, fps=fps, music_fps=music_fps, music_kind=kind,
                        split=split, note=note)
        report[split] = {"sequences": len(sequences),
                         "minutes": round(sum(s.num_frames for s in sequences) / fps / 60.0, 3)}
    return report


def add_beats(folder: Path, music_dir: Path) -> dict:
    """Give the shards in ``folder`` exact music beats in place (``<music id>.wav`` in ``music_dir``)."""
    from e3d2_core.audio import tracked_beats
    from e3d2_core.training.data import add_beat_frames, load_shard
    paths = [folder / f"{split}.npz" for split in SPLITS if (folder / f"{split}.npz").is_file()]
    if not paths:
        raise E3D2Error("no train/val/test .npz shards here", path=folder)
    cache: dict[tuple[str, float], np.ndarray] = {}
    found = {}
    for path in paths:                      # every song is checked before any shard is rewritten
        shard = load_shard(path)
        found[path] = []
        for seq in shard.sequences:
            wav = music_dir / f"{seq.music_id}.wav"
            if (seq.music_id, shard.fps) not in cache:
                if not wav.is_file():
                    raise E3D2Error(f"sequence {seq.name}: missing music {seq.music_id}", path=wav)
                cache[seq.music_id, shard.fps] = tracked_beats(wav, fps=shard.fps)
            found[path].append(cache[seq.music_id, shard.fps])
    counts = {}
    for path in paths:
        add_beat_frames(path, found[path])
        counts[path.stem] = len(found[path])
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aistpp", type=Path, help="AIST++ annotation folder (motions/, splits/)")
    parser.add_argument("--music", required=True, type=Path, help="folder of the AIST Dance DB wav files")
    parser.add_argument("-o", "--out", type=Path, help="output folder for the shards")
    parser.add_argument("--add-beats", type=Path, metavar="DIR",
                        help="only add exact music beats to the existing shards in DIR (in place), then exit")
    parser.add_argument("--fps", type=float, default=AIST_FPS, help="motion frame rate (code rate = fps / 8)")
    parser.add_argument("--kind", default="bailando", choices=("bailando", "compact"), help="music features")
    parser.add_argument("--mirror", action="store_true", help="add mirrored copies of the training sequences")
    args = parser.parse_args(argv)
    if args.add_beats is None and (args.aistpp is None or args.out is None):
        parser.error("--aistpp and -o/--out are required (unless --add-beats)")
    try:
        if args.add_beats is not None:
            counts = add_beats(args.add_beats, args.music)
            print("music beats added: " + ", ".join(f"{k} ({n} sequences)" for k, n in counts.items()))
            return 0
        report = prepare(args.aistpp, args.music, args.out, fps=args.fps, kind=args.kind, mirror=args.mirror)
    except E3D2Error as err:
        print(f"prepare_aistpp: error: {err}", file=sys.stderr)
        return 2
    for split, info in report.items():
        print(f"{split}: {info['sequences']} sequences, {info['minutes']} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
