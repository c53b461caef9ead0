"""The entry points the CLI, the Blender add-on and scripts call. Each returns plain results or raises E3D2Error."""
from __future__ import annotations

import math
from pathlib import Path

DEFAULT_CHECKPOINT_NAME = "e3d2_default.pt"
SILENCE_PEAK = 1e-4          # -80 dBFS: a song whose loudest sample is below this is treated as silence


def default_checkpoint() -> Path:
    """``assets/e3d2_default.pt`` (the bundled model), with a clear error when it is not installed."""
    from e3d2_core.errors import E3D2Error
    from e3d2_core.paths import assets_dir

    path = assets_dir() / DEFAULT_CHECKPOINT_NAME
    if not path.is_file():
        raise E3D2Error(f"no checkpoint given and the default model {path} is not installed "
                        f"(pass a checkpoint, or train one: see docs/models.md)")
    return path


def _load_motion(seed_motion):
    from e3d2_core.errors import E3D2Error
    from e3d2_core.motion import Motion

    if seed_motion is None or isinstance(seed_motion, Motion):
        return seed_motion
    if isinstance(seed_motion, (str, Path)):
        return Motion.load(seed_motion)
    raise E3D2Error(f"seed_motion must be a Motion or a .npz path, got {type(seed_motion).__name__}")


BEAT_LOCK_DEFAULT = 1.0      # the product's beat lock (CLI, add-on, API); the paper's tables use the raw model


def generate(audio, *, seconds=None, seed=0, takes=1, temperature=0.7, top_k=None, seed_motion=None,
             checkpoint=None, device="auto", progress=None, cancel=None, in_place=False, bpm=None,
             beat_offset=None, precision="auto", policy="auto", pick="all", beat_lock=None, beat_guide=None):
    """Dance to a song.

    Args:
        audio: path of an audio file (anything ``e3d2_core.audio`` reads), up to ``audio.MAX_SECONDS`` long.
        seconds: dance only the first ``seconds`` of the song (default: all of it).
        seed: random seed: picks the first pose (seed 0: a neutral pose; see generation.seed_codes) and the
            samples when temperature > 0; the same inputs and seed give the same dance.
        takes: how many dances, generated together in one batched pass (each starts from its own pose; with a
            seed motion they share the start, so they need temperature > 0).
        temperature: > 0 samples softmax(logits / temperature) (default 0.7, ``generation.DEFAULT_TEMPERATURE``);
            0 = greedy decoding (the paper's), which with the bundled model settles into near-still motion.
        top_k: with temperature > 0, sample only among the k most likely codes.
        seed_motion: a Motion (or .npz path) whose first window gives the first pose; default a neutral pose.
        checkpoint: a bundle path; default ``assets/e3d2_default.pt``.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        progress: ``progress(fraction, message)`` called as work advances (fraction in [0, 1]).
        cancel: ``cancel() -> bool`` polled every step; True stops with :class:`e3d2_core.errors.Cancelled`.
        in_place: hold the root's floor position (no travel).
        bpm, beat_offset: override the tracked tempo (beats per minute) and first beat (seconds).
        precision: "auto" (bf16 where native, else fp32), "fp32", "bf16", or "int8" (CPU).
        policy: "auto" (π_RL when the bundle has it, else π_BC), "rl" or "bc".
        beat_lock: 0-1, how far a smooth time warp moves the dance's kinematic beats onto the music's beats
            (:mod:`e3d2_core.beat_lock`); None: the product default ``BEAT_LOCK_DEFAULT``; 0: the raw model's
            dance (as the paper's tables measure it). What it did is in ``meta["beat_lock"]``.
        beat_guide: ≥ 0, how strongly sampling favours codes that are slow on the music's beats and fast between
            them (:mod:`e3d2_core.beat_guide`; logits per unit of log-speed contrast); None: the product default
            ``GUIDE_DEFAULT`` when the checkpoint carries the guide's tables; 0: the policy's own draws. What it
            did is in ``meta["beat_guide"]``.
        pick: "all" returns every take; "best" scores the takes with the bundle's reward model R_θ and returns
            only the highest-scoring one (its score in ``meta["reward_total"]``).
    Returns:
        a Motion at the model's fps (8 frames per code step), or a list of ``takes`` Motions when takes > 1
        and pick is "all".
        ``meta`` holds model, checkpoint, checkpoint_sha256, audio, audio_hash, seed, take, temperature, top_k,
        precision, tempo, and the generated codes.
    """
    from e3d2_core import checkpoint as ckpt
    from e3d2_core import generation as gen
    from e3d2_core.errors import Cancelled, E3D2Error

    def report(fraction, message):
        if progress is not None:
            progress(float(min(1.0, max(0.0, fraction))), message)

    def check_cancel():
        if cancel is not None and cancel():
            raise Cancelled("generation cancelled")

    if not isinstance(takes, int) or takes < 1:
        raise E3D2Error(f"takes must be a whole number ≥ 1, got {takes!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise E3D2Error(f"temperature must be a number ≥ 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise E3D2Error(f"top_k must be a whole number ≥ 1, got {top_k!r}")
    if policy not in ("auto", "rl", "bc"):
        raise E3D2Error(f"policy must be 'auto', 'rl' or 'bc', got {policy!r}")
    if pick not in ("all", "best"):
        raise E3D2Error(f"pick must be 'all' or 'best', got {pick!r}")
    if seconds is not None and (not isinstance(seconds, (int, float)) or not seconds > 0):
        raise E3D2Error(f"seconds must be a positive number, got {seconds!r}")
    beat_lock = BEAT_LOCK_DEFAULT if beat_lock is None else beat_lock
    if not isinstance(beat_lock, (int, float)) or not (0.0 <= beat_lock <= 1.0):
        raise E3D2Error(f"beat_lock must be a number from 0 to 1, got {beat_lock!r}")
    if beat_guide is not None and (not isinstance(beat_guide, (int, float)) or not math.isfinite(beat_guide)
                                   or beat_guide < 0):
        raise E3D2Error(f"beat_guide must be a number ≥ 0, got {beat_guide!r}")
    torch_device = gen.resolve_device(device)
    chosen_precision = gen.resolve_precision(precision, torch_device)

    report(0.0, "loading the model")
    checkpoint_path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    bundle = ckpt.load_bundle(checkpoint_path)
    policy_part = _policy_part(bundle, policy, checkpoint_path)
    if pick == "best" and "reward" not in bundle:
        raise E3D2Error("--pick best needs a reward model, and this checkpoint has none", path=checkpoint_path)
    vqvae, policy_model = ckpt.build_generator_models(bundle, checkpoint_path, policy_part=policy_part)
    seed_motion = _load_motion(seed_motion)
    check_cancel()

    report(0.02, "reading the music")
    try:
        from e3d2_core import audio as audio_mod
    except ImportError:
        raise E3D2Error("music features need e3d2_core.audio, which is missing from this installation") from None
    music_cfg = bundle["music"]
    features = audio_mod.extract_features(audio, fps=float(music_cfg["fps"]), kind=str(music_cfg["kind"]),
                                          bpm=bpm, beat_offset=beat_offset)
    samples, _ = audio_mod.load_audio(audio, sr=int(round(512 * float(music_cfg["fps"]))))
    if samples.size == 0 or float(abs(samples).max()) < SILENCE_PEAK:
        raise E3D2Error("the song is silent: nothing to dance to", path=audio)
    del samples
    rows = features.features
    if seconds is not None:
        rows = rows[: int(math.floor(seconds * float(music_cfg["fps"]) + 1e-9))]
    music = gen.normalise_music(rows, music_cfg["mean"], music_cfg["std"])
    check_cancel()

    vqvae = gen.vqvae_for_inference(vqvae, chosen_precision, torch_device, copy_model=False)
    runner = gen.policy_for_inference(policy_model, chosen_precision, torch_device, copy_model=False)
    for part in ("vqvae", "policy", "policy_rl"):   # the fp32 weights are not needed any more
        bundle.pop(part, None)
    card = bundle.get("model_card") if isinstance(bundle.get("model_card"), dict) else {}
    meta = {"model": str(card.get("name", checkpoint_path.stem)), "checkpoint": str(checkpoint_path),
            "checkpoint_sha256": ckpt.file_sha256(checkpoint_path), "audio": str(audio),
            "audio_hash": features.audio_hash, "tempo": float(features.tempo), "precision": chosen_precision,
            "bpm_override": bpm, "beat_offset_override": beat_offset, "in_place": bool(in_place),
            "policy": {"policy": "bc", "policy_rl": "rl"}[policy_part]}
    beats = None                     # the song's beats at the motion rate, read once for the guide and the lock
    if beat_lock > 0 or beat_guide != 0:
        beats = _song_beats(audio, vqvae.fps, bpm, beat_offset)
    guide, meta["beat_guide"] = _beat_guide(bundle.get("beat_guide"), beat_guide, beats, vqvae.fps)
    motions = gen.generate_motions(vqvae, runner, music, takes=takes, seed=seed, temperature=float(temperature),
                                   top_k=top_k, seed_motion=seed_motion, in_place=in_place,
                                   progress=lambda f, m: report(0.05 + 0.9 * f, m), cancel=cancel, meta=meta,
                                   guide=guide)
    if beat_lock > 0:
        report(0.96, "locking the dance to the beat")
        motions = _lock_to_beats(motions, beats, vqvae.fps, float(beat_lock))
    if pick == "best":
        report(0.97, "scoring the takes")
        totals = [score(motion, audio, checkpoint=checkpoint_path).total for motion in motions]
        best = max(range(len(motions)), key=totals.__getitem__)
        motions = [motions[best]]
        motions[0].meta.update(reward_total=float(totals[best]), reward_totals=[float(t) for t in totals])
    report(1.0, "done")
    return motions[0] if len(motions) == 1 else motions


def _song_beats(audio, fps: float, bpm, beat_offset) -> np.ndarray:
    """(K,) the song's beats in frames at ``fps`` (the beats BAS reads, or the override's grid)."""
    from e3d2_core import audio as audio_mod

    return audio_mod.extract_features(audio, fps=fps, kind="compact", bpm=bpm, beat_offset=beat_offset).beat_frames


def _beat_guide(entry, strength, beats, fps: float):
    """(``guide`` for :func:`generation.generate_motions` or None, what it did for the meta). ``strength`` None is
    the product default when the checkpoint has tables; asked for explicitly without tables, or on a song without
    beats, the draws stay the policy's own, with one warning."""
    import warnings

    from e3d2_core.beat_guide import GUIDE_DEFAULT, BeatGuide, BeatGuideWarning

    if strength == 0:
        return None, {"strength": 0.0}
    if entry is None:
        if strength is not None:
            warnings.warn("beat guide skipped: this checkpoint has no beat-guide tables "
                          "(training/add_beat_guide.py measures them)", BeatGuideWarning, stacklevel=3)
        return None, {"strength": 0.0, "skipped": "no beat-guide tables in the checkpoint"}
    strength = GUIDE_DEFAULT if strength is None else float(strength)
    if beats is None or len(beats) < 2:
        warnings.warn("beat guide skipped: the music has no beats (silent or beatless); the draws are the "
                      "policy's own", BeatGuideWarning, stacklevel=3)
        return None, {"strength": strength, "skipped": "the music has no beats"}
    return ((lambda frames, choose: BeatGuide(entry, beats, frames, strength=strength, choose=choose, fps=fps)),
            {"strength": strength})


def _lock_to_beats(motions, beats, fps: float, strength: float):
    """Every take beat-locked to ``beats`` (frames at ``fps``); a song without beats leaves the takes raw, with
    one warning."""
    import warnings

    from e3d2_core.beat_lock import BeatLockWarning, beat_lock

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BeatLockWarning)
        locked = [beat_lock(m, beats / fps, strength=strength) for m in motions]
    for message in {str(w.message) for w in caught if issubclass(w.category, BeatLockWarning)}:
        warnings.warn(message, BeatLockWarning, stacklevel=3)
    return locked


def _policy_part(bundle: dict, policy: str, path) -> str:
    """Which policy of the bundle to run: π_RL ("policy_rl") when asked for or available, else π_BC."""
    from e3d2_core.errors import E3D2Error

    if policy == "rl" and "policy_rl" not in bundle:
        raise E3D2Error("this checkpoint has no RL-fine-tuned policy (π_RL); use policy='bc'", path=path)
    if policy == "bc" or "policy_rl" not in bundle:
        return "policy"
    return "policy_rl"


def score(motion, audio, *, checkpoint=None, motion_fps=None):
    """R_θ's score of a dance: ``Score(total, per_minute, times, values)`` (see :mod:`e3d2_core.scoring`).

    Args:
        motion: a Motion, a Motion ``.npz`` path, or joint positions (T, 72) / (T, 24, 3) with ``motion_fps``.
            Other frame rates are resampled to the reward model's; skeletons other than SMPL-24 are refused.
        audio: the music file (or precomputed step-rate ``MusicFeatures``).
        checkpoint: a bundle or stand-alone reward file; the bundled default when None.
    Returns:
        Score: total return, return per minute, step-centre times (s) and per-step values; ``note`` says when
        motion and music lengths differ and only their overlap was scored.
    """
    from e3d2_core import scoring

    return scoring.score(motion, audio, checkpoint=checkpoint, motion_fps=motion_fps)


def evaluate(pred, gt=None, *, music=None, fps=None, crop=1200, gt_cache=None, fmt=None, fixed=False) -> dict:
    """Standard dance metrics of a folder of predicted dances against a ground-truth pool folder.

    Parameters
    ----------
    pred, gt : folders of Motion ``.npz`` files or joint tracks ``.npy`` ((T, 72) or (T, 24, 3), metres, Y up);
        ``pred`` may be one dance file. FID and diversity need two or more predictions and ``gt``; otherwise
        they are None (a note says why) and only BAS and PFC are computed.
    music : folder with, per predicted file, an audio file or a ``.npy`` of music-beat frame indices at 60 fps,
        matched by identical stem, else by the AIST++ music id (``mBR0``...) in the name; or one such file for
        every dance. None: no BAS.
    fps : frame rate of joint tracks that carry none (default: 60 fps, reported in ``notes``).
    crop : predictions are cut to their first ``crop`` frames at 60 fps (1200 = 20 s; 0 = no crop).
    gt_cache : ``.npz`` file caching the GT pool's features, reused while the GT folder is unchanged.
    fmt : ``"bailando"`` (pickled ``{'pred_position'}`` .npy) or ``"edge"`` (.pkl with ``full_pose``).
    fixed : corrected feature variants (not comparable with published numbers; labelled in ``variant``).

    Returns
    -------
    dict with ``fid_k, fid_g, div_k, div_g`` (None for one prediction or no ``gt``), ``bas`` (None without
    music), ``pfc`` (EDGE's, ×10^4),
    ``div_k_gt, div_g_gt``, the counts ``n_pred, n_gt, n_bas``, ``crop``, ``variant`` and ``notes`` (list of str).
    """
    from e3d2_core.metrics.evaluate import evaluate_folders

    return evaluate_folders(pred, gt, music=music, fps=fps, crop=crop, gt_cache_path=gt_cache, fmt=fmt,
                            fixed=fixed)


def regenerate(motion, audio, *, start, end, seed=0, takes=1, blend=0.5, keep=(), poses=(), temperature=0.7,
               top_k=None, checkpoint=None, device="auto", precision="auto", policy="auto", audio_offset=0.0,
               bpm=None, beat_offset=None, progress=None, cancel=None):
    """Regenerate the range [start, end) of a dance; everything else stays as it was (see docs/editing.md).

    Args:
        motion: any Motion (generated or imported) on the model's SMPL skeleton, or a Motion ``.npz`` path.
        audio: the song the dance goes with; its time ``audio_offset`` (seconds) plays at the dance's frame 0.
        start, end: the range in seconds of the dance; at least one code step (8 model frames, 0.133 s) long,
            inside the dance and the song.
        seed, takes: as for :func:`generate`: every take continues the same kept dance with its own samples.
        blend: seconds after ``end`` over which the new part hands back to the kept dance (cut short by the
            dance's end).
        keep: joints to hold where they were during the range and its blend: names, or "feet", "hands", "root"
            (the root path).
        poses: key poses to hit inside the range, :class:`e3d2_core.constraints.PoseTarget` objects.
        temperature, top_k, checkpoint, device, precision, policy, bpm, beat_offset: as for :func:`generate`.
        progress, cancel: as for :func:`generate`.
    Returns:
        a Motion at the input's fps (the input's own frames, bit for bit, outside [start, end + blend)), or a
        list of ``takes`` Motions. ``meta["edit"]`` holds the range, the changed frames ``frames`` [i0, i1),
        ``keep_error_cm`` / ``pose_error_cm`` when constrained, and with the bundle's R_θ ``reward_total``,
        ``reward_per_minute`` and ``reward_range_per_minute`` (the regenerated range alone).
    """
    from e3d2_core import editing

    return editing.regenerate(motion, audio, start=start, end=end, blend=blend, seed=seed, takes=takes, keep=keep,
                              pose_targets=poses, temperature=temperature, top_k=top_k, checkpoint=checkpoint,
                              device=device, precision=precision, policy=policy, audio_offset=audio_offset,
                              bpm=bpm, beat_offset=beat_offset, progress=progress, cancel=cancel)


def extend(motion, audio, *, seconds=None, seed=0, takes=1, keep=(), temperature=0.7, top_k=None,
           checkpoint=None, device="auto", precision="auto", policy="auto", audio_offset=0.0, bpm=None,
           beat_offset=None, progress=None, cancel=None):
    """Continue a dance past its end by ``seconds`` (None: to the end of the song), on the same song.

    The dance's own frames are kept bit for bit; the policy continues from its last seconds. ``keep`` holds
    joints where they are at the dance's last frame. Other arguments and the result as for :func:`regenerate`.
    """
    from e3d2_core import editing

    return editing.extend(motion, audio, seconds=seconds, seed=seed, takes=takes, keep=keep,
                          temperature=temperature, top_k=top_k, checkpoint=checkpoint, device=device,
                          precision=precision, policy=policy, audio_offset=audio_offset, bpm=bpm,
                          beat_offset=beat_offset, progress=progress, cancel=cancel)
