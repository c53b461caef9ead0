"""Music: loading, per-frame music features at the motion frame rate, and music beats (all via librosa).

Frame convention
    Features are computed at ``sr = 512 * fps`` with hop 512, so feature frame ``k`` is centred on time
    ``k / fps`` -- the time of motion frame ``k``. A song of ``duration`` seconds has
    ``T = ceil(duration * fps)`` frames: every frame whose time lies in ``[0, duration)``. (librosa's centred
    framing yields ``1 + n_samples // 512`` frames, which is ``T`` or ``T + 1``; the extra frame, centred exactly
    on the end of the audio, is dropped.)

Feature sets (``kind``)
    ``"bailando"``: the 438-d set of Bailando's extractor (docs/audio-and-preview.md), columns
        0-19 MFCC (from the mel spectrogram in dB, ref = max), 20-39 ΔMFCC (width 3), 40-51 chroma_cqt of the
        harmonic part (HPSS), 52 onset strength of the percussive part (median over mel bands), 53 beat one-hot
        (``beat_track`` on that onset envelope), 54-437 tempogram of the onset envelope (win 384).
        ``chroma_cqt`` uses 7 octaves at 30720 Hz (60 fps) and 5 at 3840 Hz (7.5 fps) as Bailando does; other rates
        use the most octaves (at most 7) whose top lies safely below Nyquist.
    ``"compact"``: 37 dims for small models, columns
        0-19 MFCC, 20-31 chroma_cqt, 32 onset strength, 33 beat one-hot (all identical to the Bailando columns),
        34-35 sin/cos of the beat phase (0 on a beat, rising to 2π at the next one), 36 RMS loudness in dB
        (ref 1.0, floor -80 dB). Why: the Bailando set spends 384 of its 438 dims on the tempogram, which is
        nearly constant over a song; a small model needs timbre (MFCC), harmony (chroma), accents (onset) and,
        above all, *where in the beat* a frame is -- the one-hot only marks beat frames, the phase tells every
        frame how far it is from the next beat. RMS adds absolute loudness (MFCC 0 is relative to the song's
        loudest frame). Both kinds share the same beats, so ``beat_frames`` never depends on ``kind`` -- except below
        60 fps (the 7.5-Hz code rate), where the compact set's beat one-hot, phase, ``beat_frames`` and tempo come
        from the beats tracked at 60 fps (the beats BAS reads; a 7.5-Hz onset envelope tracks other beats, often
        another tempo), with the phase computed from the exact beat times. The Bailando set keeps its own
        code-rate beats, as Bailando's extractor makes them.

Beats
    ``beat_frames`` are librosa ``beat_track(onset_envelope=...)`` on the *whole* percussive onset envelope (BAS reads
    them: docs/metrics.md). Silent or beatless audio gives no beats and tempo 0: features are still returned
    (the beat columns are 0), but :func:`music_beats` -- used where beats are required -- raises an
    :class:`E3D2Error` that says so. ``bpm``/``beat_offset`` overrides place beats at
    ``beat_offset + k * 60 / bpm`` seconds (k any integer, times inside the song), and the beat columns follow.

Long songs
    Frame-local work (STFT, HPSS, CQT, mel spectra, RMS) runs on overlapping chunks of ``CHUNK_SECONDS`` with
    enough margin that interior frames are unaffected; everything with song-wide dependencies (dB reference max,
    the onset envelope's 80 dB floor, ΔMFCC, beat tracking, tempogram) runs on the stitched (n_mels, T)
    spectra or the 1-d onset envelope, which are small; tempograms (the feature's, and the 8-s one behind
    beat_track's tempo estimate) are built chunk by chunk. Audio is decoded and resampled as a stream. So peak
    memory is the resampled mono signal and its harmonic part + the output + one chunk's working set. Chunked and unchunked results
    agree to float round-off (tested).

Cache
    Results are cached in ``paths.cache_dir()/features`` per (sha256 of the file's bytes, fps, kind, feature
    version); overrides are applied on top of the cached tracked-beat result. Writes are atomic; an unreadable
    or inconsistent entry (or one without the song's ``peak``, written before the features carried it) is
    recomputed.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import file_sha256

MAX_SECONDS = 1200.0          # documented maximum song length (20 min); every entry point takes max_seconds=
MIN_SECONDS = 0.25            # shorter audio is refused: too few frames for Δ, CQT and beat tracking
HOP = 512                     # samples per feature frame at sr = HOP * fps
KINDS = ("bailando", "compact")
DIMS = {"bailando": 438, "compact": 37}
BEAT_COLUMN = {"bailando": 53, "compact": 33}
ONSET_COLUMN = {"bailando": 52, "compact": 32}
FEATURE_VERSION = 2           # bump when any feature changes: old cache entries are then ignored
BEAT_FPS = 60.0               # compact features below this rate take their beat columns from beats tracked here
CHUNK_SECONDS = 30.0          # length of one chunk of frame-local work
MIN_FPS, MAX_FPS = 5.0, 120.0
MIN_FRAMES = 4                # fewer feature frames break Δ (width 3) and the CQT
_TEMPOGRAM_WIN = 384
CHROMA_BINS_PER_OCTAVE = 36   # chroma_cqt's default; its tuning estimate uses the same resolution
_CQT_FMIN = 32.70319566257483  # librosa's default fmin, C1
_DECODE_BLOCK_SECONDS = 10.0
SILENCE_PEAK = 1e-4           # -80 dBFS: a song whose loudest sample is below this is treated as silence


@dataclass
class MusicFeatures:
    features: np.ndarray     # (T, D) float32, one row per motion frame at `fps`
    beat_frames: np.ndarray  # (K,) int64 frame indices (at `fps`) of the music beats
    tempo: float             # beats per minute (0.0 when no beat was found)
    fps: float
    kind: str                # "bailando" (438-d) or "compact" (37-d)
    duration: float          # seconds of audio
    audio_hash: str          # sha256 of the file's bytes (cache key, provenance)
    peak: float              # largest |sample| of the mono signal the features were computed from (at 512 * fps)

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def beat_column(self) -> int:
        return BEAT_COLUMN[self.kind]


# ---------------------------------------------------------------------------------------------- loading
def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise E3D2Error("no such audio file", path=path)
    if not path.is_file():
        raise E3D2Error("not a file (expected an audio file)", path=path)
    if path.stat().st_size == 0:
        raise E3D2Error("audio file is empty (0 bytes)", path=path)
    return path


def _open_info(path: Path):
    import soundfile as sf
    try:
        return sf.info(str(path))
    except Exception as err:  # libsndfile says "Format not recognised", "Error in WAV file", ...
        detail = str(err).splitlines()[-1].strip() if str(err) else type(err).__name__
        if "does not exist" in detail:   # libsndfile's words for contents it cannot decode: the file exists
            detail = "its contents are in no audio format libsndfile can decode, whatever its name says"
        raise E3D2Error(f"not a readable audio file (wav, flac, ogg, mp3, ...): {detail}", path=path) from None


def audio_duration(path, *, max_seconds: float = MAX_SECONDS) -> float:
    """Seconds of audio in ``path`` (from the header; cheap), with the same checks as :func:`load_audio`."""
    path = _check_file(path)
    info = _open_info(path)
    if info.frames <= 0 or info.samplerate <= 0:
        raise E3D2Error("audio file contains no samples", path=path)
    duration = info.frames / info.samplerate
    _check_length(path, duration, max_seconds)
    return duration


def _check_length(path, duration: float, max_seconds: float) -> None:
    if duration > max_seconds:
        raise E3D2Error(f"audio is {duration:.1f} s long, over the maximum of {max_seconds:g} s; raise the limit "
                        f"with --max-seconds (CLI) or max_seconds= (Python), or cut the song", path=path)
    if duration < MIN_SECONDS:
        raise E3D2Error(f"audio is only {duration:.3f} s long; at least {MIN_SECONDS:g} s is needed", path=path)


def load_audio(path, *, sr=None, mono=True, max_seconds=MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Decode ``path`` (anything libsndfile reads: wav, flac, ogg, mp3, aiff, ...).

    Returns float32 samples, shape (n,) when ``mono`` (channel mean) else (channels, n), and the sample rate:
    the file's own when ``sr`` is None, else ``sr`` (soxr HQ resampling, as ``librosa.load``). Decoding and
    resampling run as a stream, so memory holds only the output. Raises :class:`E3D2Error` for a missing, empty,
    truncated or non-audio file and for audio longer than ``max_seconds`` (or shorter than ``MIN_SECONDS``).
    """
    import soundfile as sf
    import soxr

    path = _check_file(path)
    info = _open_info(path)
    if info.frames <= 0 or info.samplerate <= 0:
        raise E3D2Error("audio file contains no samples", path=path)
    _check_length(path, info.frames / info.samplerate, max_seconds)
    sr_in = info.samplerate
    sr_out = sr_in if sr is None else sr
    if not (isinstance(sr_out, (int, float)) and sr_out > 0):
        raise E3D2Error(f"sample rate must be positive, got {sr!r}")
    channels = 1 if mono else info.channels
    expected = int(math.ceil(info.frames * sr_out / sr_in))
    out = np.zeros((channels, expected), dtype=np.float32)     # channel-major: out[0] is contiguous
    filled = 0
    stream = None if sr_out == sr_in else soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32",
                                                              quality="HQ")

    def put(block):
        nonlocal filled
        take = min(len(block), expected - filled)
        out[:, filled:filled + take] = block[:take].T
        filled += take

    read = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            log = handle.extra_info
            # libsndfile opens a cut-off wav/ogg happily and reads what is there; its log tells.
            if "should be" in log or "lacks an end-of-stream" in log:
                raise E3D2Error("audio file is truncated (the header promises more data than the file holds)",
                                path=path)
            blocksize = max(4096, int(_DECODE_BLOCK_SECONDS * sr_in))
            for block in handle.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                read += len(block)
                if mono:
                    block = block.mean(axis=1, keepdims=True, dtype=np.float32)
                put(block if stream is None else stream.resample_chunk(block))
            if stream is not None:
                put(stream.resample_chunk(np.zeros((0, channels), np.float32), last=True))
    except E3D2Error:
        raise
    except Exception as err:
        detail = str(err).splitlines()[-1].strip() if str(err) else type(err).__name__
        if "does not exist" in detail:   # libsndfile's words for contents it cannot decode: the file exists
            detail = "its contents are in no audio format libsndfile can decode, whatever its name says"
        raise E3D2Error(f"audio file is truncated or corrupt ({detail})", path=path) from None
    if read < info.frames:
        raise E3D2Error(f"audio file is truncated: {read} of {info.frames} samples decodable", path=path)
    samples = out[0] if mono else out
    return samples, (int(sr_out) if float(sr_out).is_integer() else sr_out)


# ---------------------------------------------------------------------------------------------- feature maths
def feature_sample_rate(fps: float) -> float:
    """The sample rate at which hop 512 gives exactly ``fps`` frames per second (30720 Hz at 60 fps)."""
    sr = HOP * float(fps)
    return int(sr) if sr.is_integer() else sr


def cqt_octaves(sr: float) -> int:
    """Octaves of ``chroma_cqt``: 7 at 30720 Hz, 5 at 3840 Hz (Bailando's); in general the most (<= 7) whose top
    (C1 * 2**n) stays below 0.9 * Nyquist, so librosa's wavelet basis fits."""
    return int(max(1, min(7, math.floor(math.log2(0.45 * sr / _CQT_FMIN)))))


def num_frames(duration: float, fps: float) -> int:
    """``T = ceil(duration * fps)``: the frames k with time k / fps inside [0, duration)."""
    return max(1, int(math.ceil(duration * fps - 1e-9)))


def _frame_local_features(y: np.ndarray, sr: float, with_rms: bool, chunk_frames: int | None):
    """Chunk-wise frame-local spectra of the whole signal ``y``.

    Returns a dict of float32 arrays over librosa's ``F = 1 + len(y) // 512`` frames: ``mel`` (128, F) power mel
    spectrogram of y, ``mel_perc`` (128, F) of the percussive part, ``chroma`` (12, F) chroma_cqt of the
    harmonic part, and ``rms`` (F,) if asked. Each chunk covers ``chunk_frames`` output frames plus a margin on
    each side (HPSS's 31-frame median filter, the iSTFT overlap and the CQT's longest filter, ~0.5 s), so its
    kept frames equal an unchunked computation; chunks at the song's ends see the same edges as unchunked.

    Two passes: (1) HPSS, mel spectra, RMS, and the pitch peaks from which ``chroma_cqt`` estimates the tuning
    (librosa's ``estimate_tuning`` is song-wide: median magnitude threshold, then a histogram); the harmonic
    signal is stitched into one array. (2) ``chroma_cqt`` of the harmonic signal with that one tuning.
    """
    import librosa

    total = 1 + len(y) // HOP
    fps = sr / HOP
    margin = 64 + int(math.ceil(1.5 * fps))
    step = total if not chunk_frames else max(1, int(chunk_frames))
    chunks = []
    for start in range(0, total, step):
        stop = min(total, start + step)
        lo, hi = max(0, start - margin), min(total, stop + margin)
        chunks.append((start, stop, lo, hi, slice(lo * HOP, hi * HOP if hi < total else len(y)),
                       slice(start - lo, stop - lo)))
    out = {"mel": np.zeros((128, total), np.float32), "mel_perc": np.zeros((128, total), np.float32),
           "chroma": np.zeros((12, total), np.float32)}
    if with_rms:
        out["rms"] = np.zeros(total, np.float32)
    harmonic_all = np.zeros_like(y)
    peak_pitch, peak_mag = [], []
    for start, stop, lo, hi, samples, keep in chunks:
        segment = y[samples]
        harmonic, percussive = librosa.effects.hpss(segment)
        out["mel"][:, start:stop] = librosa.feature.melspectrogram(y=segment, sr=sr, hop_length=HOP)[:, keep]
        out["mel_perc"][:, start:stop] = librosa.feature.melspectrogram(y=percussive, sr=sr,
                                                                        hop_length=HOP)[:, keep]
        if with_rms:
            out["rms"][start:stop] = librosa.feature.rms(y=segment, hop_length=HOP)[0, keep]
        pitch, mag = librosa.piptrack(y=harmonic, sr=sr, n_fft=2048, hop_length=HOP)
        pitch, mag = pitch[:, keep], mag[:, keep]
        found = pitch > 0
        peak_pitch.append(pitch[found].astype(np.float32))
        peak_mag.append(mag[found].astype(np.float32))
        first, last = start * HOP - lo * HOP, min(len(segment), stop * HOP - lo * HOP)
        harmonic_all[start * HOP: start * HOP + (last - first)] = harmonic[first:last]
        del segment, harmonic, percussive, pitch, mag, found
    tuning = _tuning_from_peaks(np.concatenate(peak_pitch), np.concatenate(peak_mag))
    del peak_pitch, peak_mag
    n_octaves = cqt_octaves(sr)
    for start, stop, lo, hi, samples, keep in chunks:
        out["chroma"][:, start:stop] = librosa.feature.chroma_cqt(y=harmonic_all[samples], sr=sr, hop_length=HOP,
                                                                  n_octaves=n_octaves, tuning=tuning)[:, keep]
    return out


def _tuning_from_peaks(pitch: np.ndarray, mag: np.ndarray) -> float:
    """librosa ``estimate_tuning`` (as chroma_cqt calls it: 36 bins per octave) from piptrack's peaks (pitch > 0) of the whole song."""
    import librosa

    if len(pitch) == 0:
        return 0.0
    threshold = np.median(mag)
    return float(librosa.pitch_tuning(pitch[mag >= threshold], bins_per_octave=CHROMA_BINS_PER_OCTAVE))


def _tempogram_chunks(onset: np.ndarray, sr: float, win_length: int, chunk_frames: int | None):
    """Yield ``(start, stop, block)`` with ``block`` (stop - start, win_length) = columns start..stop of librosa's
    centred tempogram of ``onset`` (T,), transposed.

    Padding the whole envelope exactly as librosa does (linear ramp, win // 2 each side) and then running
    ``center=False`` on slices gives the same columns as one call, without a (win, T) complex temporary.
    """
    import librosa

    total = len(onset)
    half = win_length // 2
    padded = np.pad(onset, (half, half), mode="linear_ramp", end_values=(0, 0))
    step = total if not chunk_frames else max(1, int(chunk_frames))
    for start in range(0, total, step):
        stop = min(total, start + step)
        piece = padded[start: stop + win_length - 1]
        yield start, stop, librosa.feature.tempogram(onset_envelope=piece, sr=sr, hop_length=HOP,
                                                     win_length=win_length, center=False).T


def _track_beats(onset: np.ndarray, sr: float, chunk_frames: int | None) -> tuple[float, np.ndarray]:
    """``librosa.beat.beat_track(onset_envelope=onset, sr=sr)`` with its global tempo estimate (the time-mean of
    an 8-s tempogram, ``librosa.feature.tempo``) computed chunk-wise: beat_track's own call would build a
    (win, T) float64 tempogram of the whole song. Returns (bpm, beat frames); (0, []) without onsets."""
    import librosa

    if not onset.any():
        return 0.0, np.zeros(0, np.int64)
    win_length = int(librosa.time_to_frames(8.0, sr=sr, hop_length=HOP))
    total = np.zeros(win_length, np.float64)
    for _, _, block in _tempogram_chunks(onset, sr, win_length, chunk_frames):
        total += block.sum(axis=0, dtype=np.float64)
    mean = (total / len(onset)).astype(onset.dtype)[:, None]
    bpm = librosa.feature.tempo(tg=mean, sr=sr, hop_length=HOP)
    tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=HOP, bpm=float(bpm[0]))
    return float(np.atleast_1d(tempo)[0]), np.asarray(beats, dtype=np.int64)


def beat_phase(beat_frames: np.ndarray, total: int) -> np.ndarray:
    """(T,) beat phase in [0, 1): 0 on a beat, growing linearly to the next one; before the first and after the
    last beat it continues with the median beat period. NaN everywhere when there are fewer than 2 beats."""
    beats = np.unique(np.asarray(beat_frames, dtype=np.float64))
    if len(beats) < 2:
        return np.full(total, np.nan)
    period = float(np.median(np.diff(beats)))
    frames = np.arange(total, dtype=np.float64)
    index = np.clip(np.searchsorted(beats, frames, side="right") - 1, 0, len(beats) - 2)
    phase = (frames - beats[index]) / (beats[index + 1] - beats[index])
    outside = (frames < beats[0]) | (frames >= beats[-1])
    anchor = np.where(frames < beats[0], beats[0], beats[-1])
    phase[outside] = (frames[outside] - anchor[outside]) / period
    return np.mod(phase, 1.0)


def _assemble(kind: str, parts: dict, onset: np.ndarray, beats: np.ndarray, sr: float, total: int,
              chunk_frames: int | None) -> np.ndarray:
    """Stack the columns of ``kind`` for the first ``total`` frames."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mel_db = librosa.power_to_db(parts["mel"], ref=np.max)
        mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)
        delta = librosa.feature.delta(mfcc, width=3) if kind == "bailando" else None
    one_hot = np.zeros(len(onset), np.float32)
    one_hot[beats[beats < len(onset)]] = 1.0
    features = np.zeros((total, DIMS[kind]), np.float32)
    features[:, 0:20] = mfcc[:, :total].T
    if kind == "bailando":
        features[:, 20:40] = delta[:, :total].T
        features[:, 40:52] = parts["chroma"][:, :total].T
        features[:, 52] = onset[:total]
        features[:, 53] = one_hot[:total]
        tempogram = features[:, 54:]
        for start, stop, block in _tempogram_chunks(onset, sr, _TEMPOGRAM_WIN, chunk_frames):
            if start < total:
                tempogram[start:min(stop, total)] = block[: total - start]
    else:
        features[:, 20:32] = parts["chroma"][:, :total].T
        features[:, 32] = onset[:total]
        features[:, 33] = one_hot[:total]
        _write_phase(features, beats, total)
        features[:, 36] = librosa.amplitude_to_db(parts["rms"][:total], ref=1.0, top_db=None).clip(-80.0, None)
    return features


def _write_phase(features: np.ndarray, beats: np.ndarray, total: int) -> None:
    """Beat-phase columns from beat positions in frames (fractional positions allowed: exact beat times)."""
    phase = beat_phase(beats[beats < total], total)
    if np.isnan(phase).any():           # fewer than two beats: no phase information, both columns 0
        features[:, 34:36] = 0.0
    else:
        features[:, 34] = np.sin(2 * np.pi * phase)
        features[:, 35] = np.cos(2 * np.pi * phase)


def compute_features(y: np.ndarray, sr: float, kind: str = "bailando", *, duration: float | None = None,
                     chunk_seconds: float | None = CHUNK_SECONDS) -> tuple[np.ndarray, np.ndarray, float]:
    """Features of a mono signal ``y`` (n,) already at ``sr = 512 * fps``.

    Returns ``(features (T, D) float32, beat_frames (K,) int64, tempo bpm)`` with ``T = ceil(duration * fps)``
    (``duration`` defaults to ``len(y) / sr``). ``chunk_seconds=None`` computes in one piece (for tests).
    """
    import librosa

    if kind not in KINDS:
        raise E3D2Error(f"unknown feature kind {kind!r}; choose one of {', '.join(KINDS)}")
    fps = sr / HOP
    duration = len(y) / sr if duration is None else duration
    total = min(num_frames(duration, fps), 1 + len(y) // HOP)
    if total < MIN_FRAMES:
        raise E3D2Error(f"audio too short: {total} frames at {fps:g} fps, at least {MIN_FRAMES} are needed")
    chunk_frames = None if chunk_seconds is None else max(1, int(round(chunk_seconds * fps)))
    y = np.ascontiguousarray(y, dtype=np.float32)
    with warnings.catch_warnings():
        # Low rates (3840 Hz) leave some of the 128 mel filters empty; librosa warns about it for every call.
        warnings.simplefilter("ignore")
        parts = _frame_local_features(y, sr, with_rms=(kind == "compact"), chunk_frames=chunk_frames)
        # Same as onset_strength(y=percussive, aggregate=median), but with the 80 dB floor taken song-wide.
        onset = librosa.onset.onset_strength(S=librosa.power_to_db(parts["mel_perc"]), sr=sr, hop_length=HOP,
                                             aggregate=np.median).astype(np.float32)
        tempo, beats = _track_beats(onset, sr, chunk_frames)
    beats = beats[beats < total]
    tempo = tempo if len(beats) else 0.0
    features = _assemble(kind, parts, onset, beats, sr, total, chunk_frames)
    return features, beats, tempo


# ---------------------------------------------------------------------------------------------- overrides
def override_beats(bpm: float, beat_offset: float, duration: float, fps: float) -> np.ndarray:
    """(K,) int64 frames of beats at ``beat_offset + k * 60 / bpm`` seconds (k any integer) inside the song."""
    period = 60.0 / bpm
    first = math.ceil((0.0 - beat_offset) / period - 1e-9)
    last = math.floor((duration - beat_offset) / period + 1e-9)
    times = beat_offset + np.arange(first, last + 1) * period
    frames = np.round(times * fps).astype(np.int64)
    total = num_frames(duration, fps)
    return np.unique(frames[(frames >= 0) & (frames < total)])


def _validate_request(fps, kind, bpm, beat_offset):
    if kind not in KINDS:
        raise E3D2Error(f"unknown feature kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not (isinstance(fps, (int, float)) and MIN_FPS <= fps <= MAX_FPS):
        raise E3D2Error(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps!r}")
    if beat_offset is not None and bpm is None:
        raise E3D2Error("beat_offset needs bpm: give both (--bpm B --beat-offset S)")
    if bpm is not None and not (math.isfinite(bpm) and 0 < bpm <= 60.0 * fps):
        raise E3D2Error(f"bpm must be positive and at most one beat per frame ({60.0 * fps:g} at {fps:g} fps), "
                        f"got {bpm!r}")
    if beat_offset is not None and not math.isfinite(beat_offset):
        raise E3D2Error(f"beat_offset must be a finite number of seconds, got {beat_offset!r}")


def _apply_override(result: MusicFeatures, bpm, beat_offset) -> MusicFeatures:
    beats = override_beats(float(bpm), float(beat_offset or 0.0), result.duration, result.fps)
    features = result.features.copy()
    column = BEAT_COLUMN[result.kind]
    features[:, column] = 0.0
    features[beats, column] = 1.0
    if result.kind == "compact":
        period = 60.0 / float(bpm) * result.fps                 # the grid's exact positions, not rounded frames
        offset = float(beat_offset or 0.0) * result.fps
        positions = offset + np.arange(math.ceil(-offset / period - 1e-9), len(features) / period + 1) * period
        _write_phase(features, positions[(positions >= 0) & (positions < len(features))], len(features))
    return dataclasses.replace(result, features=features, beat_frames=beats, tempo=float(bpm))


def _beats_from_motion_rate(result: MusicFeatures, beats_high: np.ndarray, high_fps: float,
                            tempo: float) -> MusicFeatures:
    """Compact features at a low (code) rate with beat columns taken from beats tracked at ``high_fps``.

    Why: tracking beats on a 7.5-Hz onset envelope finds other beats (often another tempo) than the motion-rate
    tracker that BAS reads; the policy must see the beats its dance is judged against. The one-hot marks the
    frame nearest each beat; the phase is exact (fractional beat positions).
    """
    rebeat = _with_beat_times(result, np.asarray(beats_high, np.float64) / high_fps)
    return dataclasses.replace(rebeat, tempo=tempo)


# ---------------------------------------------------------------------------------------------- cache
def _cache_file(audio_hash: str, fps: float, kind: str) -> Path | None:
    """The cache entry's path, or None when the cache folder cannot be created (caching is then skipped)."""
    from e3d2_core.paths import cache_dir
    try:
        return cache_dir() / "features" / f"{audio_hash}_{kind}_{fps:g}fps_v{FEATURE_VERSION}.npz"
    except OSError:
        return None


def _read_cache(path: Path | None, audio_hash: str, fps: float, kind: str) -> MusicFeatures | None:
    """The cached entry, or None when it is absent or unusable (corrupt, truncated, wrong shapes)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            features = np.asarray(data["features"], dtype=np.float32)
            beats = np.asarray(data["beat_frames"], dtype=np.int64)
            tempo, duration = float(data["tempo"]), float(data["duration"])
            stored_hash, peak = str(data["audio_hash"]), float(data["peak"])
    except Exception:
        return None
    total = num_frames(duration, fps) if duration > 0 else -1
    if (stored_hash != audio_hash or features.ndim != 2 or features.shape[1] != DIMS[kind]
            or features.shape[0] != total or not np.isfinite(features).all() or not 0.0 <= peak < math.inf
            or (len(beats) and (beats.min() < 0 or beats.max() >= len(features)))):
        return None
    return MusicFeatures(features, beats, tempo, float(fps), kind, duration, audio_hash, peak)


def _write_cache(path: Path | None, result: MusicFeatures) -> None:
    from e3d2_core.fileio import atomic_open
    if path is None:
        return
    try:
        with atomic_open(path) as handle:
            np.savez(handle, features=result.features, beat_frames=result.beat_frames,
                     tempo=np.float64(result.tempo), duration=np.float64(result.duration),
                     audio_hash=np.array(result.audio_hash), peak=np.float64(result.peak))
    except OSError:
        pass  # a read-only or full cache must not stop the user's job


# ---------------------------------------------------------------------------------------------- public API
def extract_features(audio, *, fps=60.0, kind="bailando", bpm=None, beat_offset=None, beat_times=None,
                     cache=True, max_seconds=MAX_SECONDS) -> MusicFeatures:
    """Music features of the audio file ``audio`` at ``fps`` frames per second (see the module docstring).

    ``kind``: "bailando" (438-d; column 53 = beat one-hot) or "compact" (37-d; column 33 = beat).
    ``bpm``/``beat_offset`` (seconds, default 0) replace the tracked beats by a steady grid; ``beat_times`` (K,)
    seconds replace them by known beats (e.g. a MIDI tempo map's quarter notes). ``cache``: read and write the
    per-user feature cache. Raises :class:`E3D2Error` for bad files or parameters.
    """
    _validate_request(fps, kind, bpm, beat_offset)
    if bpm is not None and beat_times is not None:
        raise E3D2Error("give either bpm (a steady grid) or beat_times (known beats), not both")
    fps = float(fps)
    path = _check_file(audio)
    result = _tracked_features(path, fps, kind, cache, max_seconds)
    if bpm is not None:
        return _apply_override(result, bpm, beat_offset)
    if beat_times is not None:
        return _with_beat_times(result, beat_times)
    if kind == "compact" and fps < BEAT_FPS:
        high = _tracked_features(path, BEAT_FPS, "compact", cache, max_seconds)
        return _beats_from_motion_rate(result, high.beat_frames, BEAT_FPS, high.tempo)
    return result


def _tracked_features(path: Path, fps: float, kind: str, cache: bool, max_seconds: float) -> MusicFeatures:
    """Features with the beat columns of librosa's tracker at ``fps`` itself (cached)."""
    duration = audio_duration(path, max_seconds=max_seconds)   # cheap header checks before hashing/decoding
    if num_frames(duration, fps) < MIN_FRAMES:
        raise E3D2Error(f"audio is only {duration:.3f} s long; at least {MIN_FRAMES / fps:.3g} s is needed at "
                        f"{fps:g} fps", path=path)
    audio_hash = file_sha256(path)
    cache_file = _cache_file(audio_hash, fps, kind) if cache else None
    result = _read_cache(cache_file, audio_hash, fps, kind) if cache else None
    if result is None:
        sr = feature_sample_rate(fps)
        y, _ = load_audio(path, sr=sr, mono=True, max_seconds=max_seconds)
        features, beats, tempo = compute_features(y, sr, kind, duration=duration)
        peak = float(np.abs(y).max()) if y.size else 0.0
        result = MusicFeatures(features, beats, tempo, fps, kind, duration, audio_hash, peak)
        if cache:
            _write_cache(cache_file, result)
    return result


def _with_beat_times(result: MusicFeatures, beat_times) -> MusicFeatures:
    """``result`` with its beat columns (one-hot, and the compact phase) from known beat times in seconds."""
    times = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        raise E3D2Error("beat_times must be finite, strictly increasing seconds")
    positions = times[(times >= 0) & (times < result.duration)] * result.fps
    total = len(result.features)
    frames = np.unique(np.clip(np.round(positions).astype(np.int64), 0, total - 1)) if len(positions) else \
        np.zeros(0, np.int64)
    features = result.features.copy()
    column = BEAT_COLUMN[result.kind]
    features[:, column] = 0.0
    features[frames, column] = 1.0
    if result.kind == "compact":
        _write_phase(features, positions, total)
    tempo = 60.0 / float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return dataclasses.replace(result, features=features, beat_frames=frames, tempo=tempo)


def music_beats(audio, *, fps=60.0) -> np.ndarray:
    """(K,) int64 music-beat frame indices at ``fps``, as docs/metrics.md defines them for BAS: librosa ``beat_track``
    on the percussive onset envelope (median over mel bands) at sr = 512 * fps.

    Uses cached features of either kind when present (both kinds share the beats). Raises :class:`E3D2Error`
    when the audio has no beats (silence, beatless sound): beat alignment is undefined there; use
    ``extract_features(..., bpm=..., beat_offset=...)`` to impose a beat grid instead.
    """
    beats = tracked_beats(audio, fps=fps)
    if len(beats) == 0:
        raise E3D2Error("no music beats found (silent or beatless audio); beats are required here -- "
                        "give a tempo with --bpm/--beat-offset (bpm=, beat_offset=) instead", path=audio)
    return beats


def tracked_beats(audio, *, fps=60.0, max_seconds=MAX_SECONDS) -> np.ndarray:
    """Like :func:`music_beats` but returns an empty array for beatless audio instead of raising."""
    _validate_request(fps, "bailando", None, None)
    path = _check_file(audio)
    audio_hash = file_sha256(path)
    for kind in KINDS:
        result = _read_cache(_cache_file(audio_hash, float(fps), kind), audio_hash, float(fps), kind)
        if result is not None:
            return result.beat_frames.copy()
    return extract_features(path, fps=fps, kind="compact", max_seconds=max_seconds).beat_frames


def refuse_silence(features: MusicFeatures, audio) -> None:
    """Raise :class:`E3D2Error` when the song of ``features`` is silent (its peak below ``SILENCE_PEAK``)."""
    if features.peak < SILENCE_PEAK:
        raise E3D2Error("the song is silent: nothing to dance to", path=audio)
