"""Preview any Motion without Blender: a stick-figure video (mp4 with the song), a gif, or a png contact sheet.

Each frame shows the body from the front (x-y) and the side (z-y) over a floor grid, the top view (x-z) with
the root's path, and a timeline strip with the music beats (ticks), the body's mean joint speed (so a viewer
can see whether the motion's accents sit on the beats) and a cursor. On each music beat the views flash
briefly and the beat counter ticks. Frames are drawn on one matplotlib (Agg) figure by blitting only the
moving artists, and piped as raw RGB to the ffmpeg binary bundled with imageio-ffmpeg, which also muxes the song.
"""
from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error

FORMATS = (".mp4", ".gif", ".png")
GIF_MAX_SECONDS = 60.0           # gifs hold every frame in memory; longer previews should be mp4
FLASH_SECONDS = 0.15             # decay time of the beat flash
CONTACT_SHEET = (4, 2)           # rows, columns of the png contact sheet
_LEFT, _RIGHT, _CENTRE = "#1f77b4", "#d62728", "#333333"


def _bone_colours(names) -> list[str]:
    return [_LEFT if n.startswith("left") else _RIGHT if n.startswith("right") else _CENTRE for n in names]


class StickFigureRenderer:
    """Draws frame ``i`` of ``joints`` (T, 24, 3) metres, Y up, at ``fps`` into an (H, W, 3) uint8 image.

    ``beat_times``: (K,) seconds of the music beats (may be empty). ``size``: (width, height) pixels, even.
    """

    def __init__(self, joints: np.ndarray, parents, names, fps: float, beat_times=(), size=(960, 540),
                 title: str = ""):
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        self.joints = np.asarray(joints, dtype=np.float64)
        self.fps = float(fps)
        self.num_frames = len(self.joints)
        self.duration = self.num_frames / self.fps
        self.bones = [(j, p) for j, p in enumerate(parents) if p >= 0]
        colours = _bone_colours([names[j] for j, _ in self.bones])
        beat_times = np.asarray(beat_times, dtype=np.float64)
        self.beat_times = beat_times[(beat_times >= 0) & (beat_times < self.duration)]
        self.flash = self._flash_curve()
        width, height = size
        self.size = (int(width), int(height))
        self.figure = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        grid = self.figure.add_gridspec(2, 3, height_ratios=[5, 1], hspace=0.22, wspace=0.06,
                                        left=0.02, right=0.98, top=0.90, bottom=0.09)
        views = {"front": (0, 1), "side": (2, 1), "top": (0, 2)}
        self.axes = {name: self.figure.add_subplot(grid[0, k]) for k, name in enumerate(views)}
        self.timeline = self.figure.add_subplot(grid[1, :])
        lo, hi = self.joints.reshape(-1, 3).min(0), self.joints.reshape(-1, 3).max(0)
        centre = (lo + hi) / 2
        half_axis = np.maximum(0.8, (hi - lo) / 2 + 0.2)        # per-axis half width of the side views
        half = float(max(half_axis[0], half_axis[2]))           # top view: square
        self.collections, self.flashes = {}, {}
        for name, (a, b) in views.items():
            ax = self.axes[name]
            ax.set_aspect("equal")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(name, fontsize=9, color="#555555")
            if name == "top":
                ax.set_xlim(centre[0] - half, centre[0] + half)
                ax.set_ylim(centre[2] + half, centre[2] - half)     # +z (the body's front) points down
                ticks = np.arange(math.floor(centre[0] - half), math.ceil(centre[0] + half) + 0.01, 0.5)
                for x in ticks:
                    ax.axvline(x, color="#dddddd", lw=0.6, zorder=0)
                for z in np.arange(math.floor(centre[2] - half), math.ceil(centre[2] + half) + 0.01, 0.5):
                    ax.axhline(z, color="#dddddd", lw=0.6, zorder=0)
                ax.plot(self.joints[:, 0, 0], self.joints[:, 0, 2], color="#bbbbbb", lw=0.8, zorder=1)
            else:
                left, right = centre[a] - half_axis[a], centre[a] + half_axis[a]
                ax.set_xlim(left, right)
                ax.set_ylim(min(-0.1, lo[1] - 0.1), max(2.0, hi[1] + 0.1))
                ax.axhspan(-1, 0, color="#eeeeee", zorder=0)
                ax.axhline(0, color="#999999", lw=1, zorder=0)
                for x in np.arange(math.floor(left), math.ceil(right) + 0.01, 0.5):
                    ax.plot([x, x], [-1, 0], color="#cccccc", lw=0.6, zorder=0)
            self.flashes[name] = ax.axvspan(-1e3, 1e3, color="#ffcc00", alpha=0.0, zorder=0.5, animated=True)
            self.collections[name] = ax.add_collection(LineCollection([], colors=colours, linewidths=2.5,
                                                                      capstyle="round", animated=True))
        self.axis_pairs = {"front": (0, 1), "side": (2, 1), "top": (0, 2)}
        tl = self.timeline
        tl.set_xlim(0, self.duration)
        tl.set_ylim(0, 1.05)
        tl.set_yticks([])
        tl.tick_params(labelsize=7)
        tl.set_xlabel("seconds   (ticks: music beats; grey: mean joint speed)", fontsize=7, labelpad=1)
        for t in self.beat_times:
            tl.axvline(t, color="#ff9900", lw=0.8)
        speed = np.linalg.norm(np.diff(self.joints, axis=0), axis=-1).mean(-1) * self.fps
        if len(speed):
            tl.plot((np.arange(len(speed)) + 0.5) / self.fps, speed / max(speed.max(), 1e-9), color="#777777",
                    lw=0.7)
        self.cursor = tl.axvline(0, color="black", lw=1.5, animated=True)
        self.title = title
        self.label = self.figure.text(0.01, 0.955, "", fontsize=10, animated=True, family="monospace")
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def _flash_curve(self) -> np.ndarray:
        times = np.arange(self.num_frames) / self.fps
        flash = np.zeros(self.num_frames)
        for beat in self.beat_times:
            after = times - beat
            # A beat at time b lights the frame nearest b (not only later ones, or coarse frame rates miss it).
            after = np.where(np.abs(after) <= 0.5 / self.fps, 0.0, after)
            live = (after >= 0) & (after < 4 * FLASH_SECONDS)
            flash[live] = np.maximum(flash[live], np.exp(-after[live] / FLASH_SECONDS))
        return flash

    def beats_before(self, frame: int) -> int:
        return int(np.searchsorted(self.beat_times, frame / self.fps + 0.5 / self.fps, side="right"))

    def frame(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of frame ``i``."""
        pose = self.joints[i]
        self.canvas.restore_region(self.background)
        for name, ax in self.axes.items():
            a, b = self.axis_pairs[name]
            self.flashes[name].set_alpha(0.35 * self.flash[i])
            ax.draw_artist(self.flashes[name])
            self.collections[name].set_segments([[(pose[j, a], pose[j, b]), (pose[p, a], pose[p, b])]
                                                 for j, p in self.bones])
            ax.draw_artist(self.collections[name])
        self.cursor.set_xdata([i / self.fps, i / self.fps])
        self.timeline.draw_artist(self.cursor)
        beat = self.beats_before(i)
        marker = " *BEAT*" if self.flash[i] > 0.99 else ""
        self.label.set_text(f"t {i / self.fps:6.2f} s  frame {i:5d}  beat {beat:3d}/{len(self.beat_times)}"
                            f"{marker:7s}  {self.title}")
        self.figure.draw_artist(self.label)
        image = np.asarray(self.canvas.buffer_rgba())
        return np.ascontiguousarray(image[:, :, :3])

    def close(self) -> None:
        self.figure.clear()


# ---------------------------------------------------------------------------------------------- outputs
def _ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def _write_mp4(renderer: StickFigureRenderer, path: Path, audio: Path | None) -> None:
    width, height = renderer.size
    duration = renderer.num_frames / renderer.fps
    command = [_ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{renderer.fps:g}", "-i", "-"]
    if audio is not None:
        command += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "160k"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                "-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", str(path)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(renderer.num_frames):
            process.stdin.write(renderer.frame(i).tobytes())
        process.stdin.close()
    except BrokenPipeError:
        pass
    finally:
        errors = process.stderr.read().decode(errors="replace")
        code = process.wait()
    if code != 0:
        last = errors.strip().splitlines()[-1] if errors.strip() else f"exit code {code}"
        raise E3D2Error(f"ffmpeg could not write the video: {last}", path=path)


def _write_gif(renderer: StickFigureRenderer, path: Path) -> None:
    from PIL import Image

    first = Image.fromarray(renderer.frame(0))
    palette = first.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    frames = [palette] + [Image.fromarray(renderer.frame(i)).quantize(palette=palette, dither=Image.Dither.NONE)
                          for i in range(1, renderer.num_frames)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=max(20, int(round(1000 / renderer.fps))), disposal=1)


def _write_contact_sheet(renderer: StickFigureRenderer, path: Path) -> None:
    from PIL import Image

    rows, cols = CONTACT_SHEET
    count = min(rows * cols, renderer.num_frames)
    picks = np.unique(np.linspace(0, renderer.num_frames - 1, count).round().astype(int))
    width, height = renderer.size
    sheet = Image.new("RGB", (cols * width, rows * height), "white")
    for k, i in enumerate(picks):
        sheet.paste(Image.fromarray(renderer.frame(int(i))), ((k % cols) * width, (k // cols) * height))
    sheet.save(path, format="PNG")


def render_preview(motion, output, *, audio=None, fps: float = 30.0, seconds: float | None = None,
                   size: tuple[int, int] | None = None, skeleton=None) -> Path:
    """Write a preview of ``motion`` (a :class:`Motion` or a Motion ``.npz`` path) to ``output``.

    ``output`` ends in .mp4 (video; with ``audio``, the song is its sound track), .gif (animation, at most
    ``GIF_MAX_SECONDS``) or .png (contact sheet of 8 frames). ``fps``: preview frame rate (the motion is
    resampled). ``seconds``: only the first ``seconds``. ``audio``: a song whose beats are marked (librosa
    beats as in :func:`e3d2_core.audio.music_beats`). ``size``: frame (width, height) in pixels (default 960x540
    for mp4, 640x360 for gif and png). Written atomically; raises :class:`E3D2Error` on bad input.
    """
    from e3d2_core import audio as audio_mod
    from e3d2_core.fileio import atomic_path
    from e3d2_core.motion import Motion
    from e3d2_core.skeleton import default_skeleton

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise E3D2Error(f"preview must end in {', '.join(FORMATS)}", path=output)
    if not (isinstance(fps, (int, float)) and 1 <= fps <= 120):
        raise E3D2Error(f"preview fps must be between 1 and 120, got {fps!r}")
    if seconds is not None and not (seconds > 0):
        raise E3D2Error(f"--seconds must be positive, got {seconds!r}")
    if not isinstance(motion, Motion):
        motion = Motion.load(motion)
    skeleton = skeleton or default_skeleton()
    if motion.fps != fps:
        motion = motion.resample(fps)
    if seconds is not None:
        motion = motion.trim(0, max(1, int(round(seconds * fps))))
    if suffix == ".gif" and motion.duration > GIF_MAX_SECONDS + 1e-6:
        raise E3D2Error(f"a gif preview is limited to {GIF_MAX_SECONDS:g} s (this one is {motion.duration:.1f} s); "
                        f"use --seconds or write .mp4", path=output)
    beat_times = np.zeros(0)
    audio_path = None
    if audio is not None:
        beat_times = audio_mod.tracked_beats(audio, fps=60.0) / 60.0     # decodes (validates) unless cached
        audio_path = Path(audio).resolve()
    if size is None:
        size = (960, 540) if suffix == ".mp4" else (640, 360)
    width, height = (int(size[0]) // 2 * 2, int(size[1]) // 2 * 2)          # libx264 needs even sizes
    title = Path(audio).name if audio is not None else ""
    renderer = StickFigureRenderer(motion.joints(skeleton), skeleton.parents, skeleton.names, fps, beat_times,
                                   (width, height), title=title)
    try:
        with atomic_path(output) as tmp:
            if suffix == ".mp4":
                _write_mp4(renderer, tmp, audio_path)
            elif suffix == ".gif":
                _write_gif(renderer, tmp)
            else:
                _write_contact_sheet(renderer, tmp)
    finally:
        renderer.close()
    return output
