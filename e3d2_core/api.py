"""The entry points the CLI, the Blender add-on and scripts call. Each returns plain results or raises E3D2Error.

A fresh dance is one :class:`DanceRequest` (every option with its default and its check) that :func:`dance`
turns into finished takes; :func:`generate` is the same with keywords. Importing this module loads no torch: the
add-on builds requests and reads the defaults in Blender's own Python.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from e3d2_core.dance_options import DEFAULT_TEMPERATURE, check_policy, check_sampling
from e3d2_core.errors import E3D2Error

BEAT_LOCK_DEFAULT = 1.0      # the product's beat lock (CLI, add-on, API); the paper's tables use the raw model
BEAT_GUIDE_DEFAULT = 4.0     # the product's beat guide (docs/music-following.md has the sweep); raw model: 0
PICKS = ("all", "best")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class DanceRequest:
    """One fresh dance: every option of :func:`generate`, and where its takes go (``offset``, ``facing``, ``fps``).

    Every option is checked when the request is made (an :class:`E3D2Error` names the first bad one); the music
    options ``bpm``/``beat_offset``, ``device`` and ``precision`` are checked where they are used, before any model
    is loaded.

    Attributes:
        audio: path of the song (anything ``e3d2_core.audio`` reads).
        seconds: length of the dance in seconds from ``offset``; None: to the end of the song.
        offset: where the dance starts in the song, seconds ≥ 0. The model hears the song from its start to
            ``offset + seconds`` (so the part at the offset is danced as it is in the whole dance), and the takes
            are cut to ``[offset, offset + seconds)``.
        seed, takes, temperature, top_k, seed_motion, checkpoint, device, precision, policy, pick, in_place, bpm,
            beat_offset, beat_lock, beat_guide, repeat_cost: as for :func:`generate` (``beat_lock`` None:
            ``BEAT_LOCK_DEFAULT``; ``beat_guide`` None: ``BEAT_GUIDE_DEFAULT`` when the checkpoint has the guide's
            tables; ``repeat_cost`` None: the checkpoint's own).
        facing: degrees to turn every take about the vertical (Y) axis through the origin.
        fps: frame rate of the takes (resampled); None: the model's.
    """

    audio: str | os.PathLike
    seconds: float | None = None
    offset: float = 0.0
    seed: int = 0
    takes: int = 1
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int | None = None
    beat_lock: float | None = None
    beat_guide: float | None = None
    repeat_cost: float | None = None
    in_place: bool = False
    facing: float = 0.0
    fps: float | None = None
    bpm: float | None = None
    beat_offset: float | None = None
    seed_motion: object = None          # a Motion, a Motion .npz path, or None
    checkpoint: str | os.PathLike | None = None
    device: str = "auto"
    precision: str = "auto"
    policy: str = "auto"
    pick: str = "all"

    def __post_init__(self):
        if not isinstance(self.audio, (str, os.PathLike)):
            raise E3D2Error(f"audio must be the path of an audio file, got {type(self.audio).__name__}")
        if self.seconds is not None and (not _finite(self.seconds) or self.seconds <= 0):
            raise E3D2Error(f"seconds must be a positive number, got {self.seconds!r}")
        if not _finite(self.offset) or self.offset < 0:
            raise E3D2Error(f"offset must be a number of seconds ≥ 0, got {self.offset!r}")
        check_sampling(takes=self.takes, seed=self.seed, temperature=self.temperature, top_k=self.top_k)
        if self.beat_lock is not None and (not _finite(self.beat_lock) or not 0.0 <= self.beat_lock <= 1.0):
            raise E3D2Error(f"beat_lock must be a number from 0 to 1, got {self.beat_lock!r}")
        if self.beat_guide is not None and (not _finite(self.beat_guide) or self.beat_guide < 0):
            raise E3D2Error(f"beat_guide must be a number ≥ 0, got {self.beat_guide!r}")
        if self.repeat_cost is not None and (not _finite(self.repeat_cost) or self.repeat_cost < 0):
            raise E3D2Error(f"repeat_cost must be a number ≥ 0, got {self.repeat_cost!r}")
        if not isinstance(self.in_place, bool):
            raise E3D2Error(f"in_place must be True or False, got {self.in_place!r}")
        if not _finite(self.facing):
            raise E3D2Error(f"facing must be a number of degrees, got {self.facing!r}")
        if self.fps is not None and (not _finite(self.fps) or self.fps <= 0):
            raise E3D2Error(f"fps must be a positive number of frames per second, got {self.fps!r}")
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise E3D2Error(f"checkpoint must be the path of a model bundle, got {type(self.checkpoint).__name__}")
        if self.seed_motion is not None and not isinstance(self.seed_motion, (str, os.PathLike)):
            from e3d2_core.motion import Motion
            if not isinstance(self.seed_motion, Motion):
                raise E3D2Error(f"seed_motion must be a Motion or a .npz path, got {type(self.seed_motion).__name__}")
        check_policy(self.policy)
        if self.pick not in PICKS:
            raise E3D2Error(f"pick must be 'all' or 'best', got {self.pick!r}")

    @property
    def heard_seconds(self) -> float | None:
        """Seconds of the song the model dances to, from its start (None: all of it)."""
        return None if self.seconds is None else self.offset + self.seconds

    @property
    def beat_lock_strength(self) -> float:
        """The beat lock to apply: ``beat_lock``, or ``BEAT_LOCK_DEFAULT`` when it is None."""
        return BEAT_LOCK_DEFAULT if self.beat_lock is None else float(self.beat_lock)

    def generate_keywords(self) -> dict:
        """The keywords of :func:`generate` (without progress and cancel) that make this request's takes before
        they are cut: the song from its start to ``offset + seconds``."""
        return {"seconds": self.heard_seconds, "seed": self.seed, "takes": self.takes,
                "temperature": self.temperature, "top_k": self.top_k, "seed_motion": self.seed_motion,
                "checkpoint": self.checkpoint, "device": self.device, "in_place": self.in_place, "bpm": self.bpm,
                "beat_offset": self.beat_offset, "precision": self.precision, "policy": self.policy,
                "pick": self.pick, "beat_lock": self.beat_lock, "beat_guide": self.beat_guide,
                "repeat_cost": self.repeat_cost}


def dance(request: DanceRequest, *, progress=None, cancel=None, generator=None) -> list:
    """The finished takes of a dance request.

    Args:
        request: the dance (:class:`DanceRequest`).
        progress, cancel: as for :func:`generate`.
        generator: a function with :func:`generate`'s signature (a Motion or a list of Motions back) that makes
            the takes before they are cut: another method, a saved dance, a test's stand-in. It is given
            ``request.generate_keywords()`` and must honour ``in_place``. Default: the bundle's model.
    Returns:
        list of Motions, one per take (one with ``pick="best"``): cut to ``[offset, offset + seconds)`` of the
        song, turned by ``facing``, in place if asked, at ``fps`` (the model's when None).
    """
    if generator is None:
        takes = _model_takes(request, progress, cancel)
    else:
        made = generator(request.audio, **request.generate_keywords(), progress=progress, cancel=cancel)
        takes = list(made) if isinstance(made, (list, tuple)) else [made]
    return [_finish(take, request) for take in takes]


def _finish(motion, request: DanceRequest):
    """A take cut to the request's part of the song, turned, at its frame rate. (In place it already is: the model
    holds the floor position before the beat lock, which reads the dance's speed.)"""
    if request.offset > 0 or request.seconds is not None:
        motion = motion.trim_seconds(request.offset, request.heard_seconds)
    motion = rotate_facing(motion, float(request.facing))
    return motion if request.fps is None else motion.resample(request.fps)


def rotate_facing(motion, degrees: float):
    """The motion turned by ``degrees`` about the vertical (Y) axis through the origin."""
    if not degrees:
        return motion
    from scipy.spatial.transform import Rotation

    turn = Rotation.from_euler("y", degrees, degrees=True)
    poses = motion.poses.copy()
    poses[:, 0] = (turn * Rotation.from_rotvec(motion.poses[:, 0].astype("float64"))).as_rotvec()
    return motion.copy(poses=poses, trans=turn.apply(motion.trans.astype("float64")))


def generate(audio, *, seconds=None, seed=0, takes=1, temperature=DEFAULT_TEMPERATURE, top_k=None, seed_motion=None,
             checkpoint=None, device="auto", progress=None, cancel=None, in_place=False, bpm=None,
             beat_offset=None, precision="auto", policy="auto", pick="all", beat_lock=None, beat_guide=None,
             repeat_cost=None):
    """Dance to a song (the keyword form of :func:`dance` with a :class:`DanceRequest`).

    Args:
        audio: path of an audio file (anything ``e3d2_core.audio`` reads), up to ``audio.MAX_SECONDS`` long.
        seconds: dance only the first ``seconds`` of the song (default: all of it).
        seed: random seed: picks the first pose (seed 0: a neutral pose; see generation.seed_codes) and the
            samples when temperature > 0; the same inputs and seed give the same dance.
        takes: how many dances, generated together in one batched pass (each starts from its own pose; with a
            seed motion they share the start, so they need temperature > 0).
        temperature: > 0 samples softmax(logits / temperature) (default ``DEFAULT_TEMPERATURE``, 0.7);
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
            ``BEAT_GUIDE_DEFAULT`` when the checkpoint carries the guide's tables; 0: the policy's own draws. What it
            did is in ``meta["beat_guide"]``.
        repeat_cost: ≥ 0, logits off a move per time it was danced in the last 2 s beyond what real dance
            repeats (:class:`e3d2_core.repeat_limit.RepeatLimit`): it keeps the policy from looping on one pose for
            seconds. None: the checkpoint's own (none in older checkpoints); 0: off. What it did is in
            ``meta["repeat"]``.
        pick: "all" returns every take; "best" scores the takes with the bundle's reward model R_θ and returns
            only the highest-scoring one (its score in ``meta["reward_total"]``).
    Returns:
        a Motion at the model's fps (8 frames per code step), or a list of ``takes`` Motions when takes > 1
        and pick is "all".
        ``meta`` holds model, checkpoint, checkpoint_sha256, audio, audio_hash, seed, take, temperature, top_k,
        precision, tempo, and the generated codes.
    """
    request = DanceRequest(audio, seconds=seconds, seed=seed, takes=takes, temperature=temperature, top_k=top_k,
                           seed_motion=seed_motion, checkpoint=checkpoint, device=device, in_place=in_place,
                           bpm=bpm, beat_offset=beat_offset, precision=precision, policy=policy, pick=pick,
                           beat_lock=beat_lock, beat_guide=beat_guide, repeat_cost=repeat_cost)
    motions = dance(request, progress=progress, cancel=cancel)
    return motions[0] if len(motions) == 1 else motions


def _load_motion(seed_motion):
    from e3d2_core.motion import Motion

    if seed_motion is None or isinstance(seed_motion, Motion):
        return seed_motion
    return Motion.load(seed_motion)


def _model_takes(request: DanceRequest, progress, cancel) -> list:
    """The bundle's model dancing to the song from its start for ``request.heard_seconds``: the raw takes, in
    place if asked, beat-locked, or the best one alone with ``pick="best"``."""
    from e3d2_core import checkpoint as ckpt
    from e3d2_core import generation as gen
    from e3d2_core.errors import Cancelled

    def report(fraction, message):
        if progress is not None:
            progress(float(min(1.0, max(0.0, fraction))), message)

    def check_cancel():
        if cancel is not None and cancel():
            raise Cancelled("generation cancelled")

    torch_device = gen.resolve_device(request.device)
    chosen_precision = gen.resolve_precision(request.precision, torch_device)

    report(0.0, "loading the model")
    checkpoint_path = Path(request.checkpoint) if request.checkpoint is not None else ckpt.default_checkpoint()
    bundle = ckpt.load_bundle(checkpoint_path)
    policy_part = ckpt.policy_part(bundle, request.policy, checkpoint_path)
    if request.pick == "best" and "reward" not in bundle:
        raise E3D2Error("--pick best needs a reward model, and this checkpoint has none", path=checkpoint_path)
    vqvae, policy_model = ckpt.build_generator_models(bundle, checkpoint_path, policy_part=policy_part)
    seed_motion = _load_motion(request.seed_motion)
    check_cancel()

    report(0.02, "reading the music")
    try:
        from e3d2_core import audio as audio_mod
    except ImportError:
        raise E3D2Error("music features need e3d2_core.audio, which is missing from this installation") from None
    audio, bpm, beat_offset = request.audio, request.bpm, request.beat_offset
    music_cfg = bundle["music"]
    features = audio_mod.extract_features(audio, fps=float(music_cfg["fps"]), kind=str(music_cfg["kind"]),
                                          bpm=bpm, beat_offset=beat_offset)
    audio_mod.refuse_silence(features, audio)
    rows = features.features
    if request.heard_seconds is not None:
        rows = rows[: int(math.floor(request.heard_seconds * float(music_cfg["fps"]) + 1e-9))]
    music = gen.normalise_music(rows, music_cfg["mean"], music_cfg["std"])
    check_cancel()

    vqvae = gen.vqvae_for_inference(vqvae, chosen_precision, torch_device, copy_model=False)
    runner = gen.policy_for_inference(policy_model, chosen_precision, torch_device, copy_model=False)
    for part in ("vqvae", "policy", "policy_rl", "policy_beat"):   # the fp32 weights are not needed any more
        bundle.pop(part, None)
    card = bundle.get("model_card") if isinstance(bundle.get("model_card"), dict) else {}
    meta = {"model": str(card.get("name", checkpoint_path.stem)), "checkpoint": str(checkpoint_path),
            "checkpoint_sha256": ckpt.file_sha256(checkpoint_path), "audio": str(audio),
            "audio_hash": features.audio_hash, "tempo": float(features.tempo), "precision": chosen_precision,
            "bpm_override": bpm, "beat_offset_override": beat_offset, "in_place": request.in_place,
            "policy": ckpt.POLICY_NAMES[policy_part]}
    beats = None                     # the song's beats at the motion rate, read once for the guide and the lock
    if request.beat_lock_strength > 0 or request.beat_guide != 0:
        beats = _song_beats(audio, vqvae.fps, bpm, beat_offset)
        if len(beats) > 1:        # the tempo danced to (meta "tempo" is the features' tracker's)
            from e3d2_core.beat_level import bpm_of
            meta["dance_tempo"] = round(bpm_of(beats, vqvae.fps), 2)
    guide, meta["beat_guide"] = _beat_guide(bundle.get("beat_guide"), request.beat_guide, beats, vqvae.fps)
    repeat = _repeat_limit(bundle.get("repeat"), request.repeat_cost)
    meta["repeat"] = {"cost": 0.0} if repeat is None else repeat.entry()
    motions = gen.generate_motions(vqvae, runner, music, takes=request.takes, seed=request.seed,
                                   temperature=float(request.temperature), top_k=request.top_k,
                                   seed_motion=seed_motion, in_place=request.in_place,
                                   progress=lambda f, m: report(0.05 + 0.9 * f, m), cancel=cancel, meta=meta,
                                   guide=guide, repeat=repeat)
    if request.beat_lock_strength > 0:
        report(0.96, "locking the dance to the beat")
        motions = _lock_to_beats(motions, beats, vqvae.fps, request.beat_lock_strength)
    if request.pick == "best":
        report(0.97, "scoring the takes")
        totals = [score(motion, audio, checkpoint=checkpoint_path).total for motion in motions]
        best = max(range(len(motions)), key=totals.__getitem__)
        motions = [motions[best]]
        motions[0].meta.update(reward_total=float(totals[best]), reward_totals=[float(t) for t in totals])
    report(1.0, "done")
    return motions


def _song_beats(audio, fps: float, bpm, beat_offset):
    """(K,) the beats the guide and the lock step on, in frames at ``fps``: the override's grid, else the
    tracker's beats at the metrical level a dancer would step on (:mod:`e3d2_core.beat_level`: a slow song that
    the tracker doubled is danced on its beats, not on every off-beat)."""
    from e3d2_core import audio as audio_mod
    from e3d2_core.beat_level import song_dance_beats

    features = audio_mod.extract_features(audio, fps=fps, kind="compact", bpm=bpm, beat_offset=beat_offset)
    if bpm is not None or len(features.beat_frames) < 4:
        return features.beat_frames
    return song_dance_beats(audio, features.beat_frames, fps, features.audio_hash)


def _beat_guide(entry, strength, beats, fps: float):
    """(``guide`` for :func:`generation.generate_motions` or None, what it did for the meta). ``strength`` None is
    the product default when the checkpoint has tables; asked for explicitly without tables, or on a song without
    beats, the draws stay the policy's own, with one warning."""
    import warnings

    from e3d2_core.beat_guide import BeatGuide, BeatGuideWarning

    if strength == 0:
        return None, {"strength": 0.0}
    if entry is None:
        if strength is not None:
            warnings.warn("beat guide skipped: this checkpoint has no beat-guide tables "
                          "(training/add_beat_guide.py measures them)", BeatGuideWarning, stacklevel=3)
        return None, {"strength": 0.0, "skipped": "no beat-guide tables in the checkpoint"}
    strength = BEAT_GUIDE_DEFAULT if strength is None else float(strength)
    if beats is None or len(beats) < 2:
        warnings.warn("beat guide skipped: the music has no beats (silent or beatless); the draws are the "
                      "policy's own", BeatGuideWarning, stacklevel=3)
        return None, {"strength": strength, "skipped": "the music has no beats"}
    return ((lambda frames, choose: BeatGuide(entry, beats, frames, strength=strength, choose=choose, fps=fps)),
            {"strength": strength})


def _repeat_limit(entry, cost):
    """The RepeatLimit to sample with (None: repeats are free): the bundle's, its cost replaced by ``cost``
    unless that is None; a bundle without one gets the default window and free repeats when a cost is asked."""
    from dataclasses import replace

    from e3d2_core.repeat_limit import RepeatLimit

    limit = RepeatLimit.from_entry(entry)
    if cost is not None:
        limit = RepeatLimit(cost=float(cost)) if limit is None else replace(limit, cost=float(cost))
    return None if limit is None or limit.cost == 0 else limit


def _lock_to_beats(motions, beats, fps: float, strength: float):
    """Every take beat-locked to ``beats`` (frames at ``fps``); a song without beats leaves the takes raw, with
    one warning."""
    import warnings

    from e3d2_core.beat_lock import BeatLockWarning, beat_lock

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BeatLockWarning)
        locked = [beat_lock(m, beats / fps, strength=strength) for m in motions]
    for message in {str(w.message) for w in caught if issubclass(w.category, BeatLockWarning)}:
        warnings.warn(message, BeatLockWarning, stacklevel=4)   # at the caller of dance()
    return locked


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


def regenerate(motion, audio, *, start, end, seed=0, takes=1, blend=0.5, keep=(), poses=(),
               temperature=DEFAULT_TEMPERATURE, top_k=None, checkpoint=None, device="auto", precision="auto",
               policy="auto", audio_offset=0.0, bpm=None, beat_offset=None, progress=None, cancel=None):
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


def extend(motion, audio, *, seconds=None, seed=0, takes=1, keep=(), temperature=DEFAULT_TEMPERATURE,
           top_k=None, checkpoint=None, device="auto", precision="auto", policy="auto", audio_offset=0.0,
           bpm=None, beat_offset=None, progress=None, cancel=None):
    """Continue a dance past its end by ``seconds`` (None: to the end of the song), on the same song.

    The dance's own frames are kept bit for bit; the policy continues from its last seconds. ``keep`` holds
    joints where they are at the dance's last frame. Other arguments and the result as for :func:`regenerate`.
    """
    from e3d2_core import editing

    return editing.extend(motion, audio, seconds=seconds, seed=seed, takes=takes, keep=keep,
                          temperature=temperature, top_k=top_k, checkpoint=checkpoint, device=device,
                          precision=precision, policy=policy, audio_offset=audio_offset, bpm=bpm,
                          beat_offset=beat_offset, progress=progress, cancel=cancel)
