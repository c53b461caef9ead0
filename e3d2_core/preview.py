"""Preview any Motion without Blender: a stick-figure video (mp4 with the song), a gif, or a png contact sheet.

Each frame shows the body from the front (x-y) and the side (z-y) over a floor, the top view (x-z) with the
root's path, and a timeline strip with the music beats (ticks), the body's mean joint speed (so a viewer can
see whether the motion's accents sit on the beats) and a cursor. On each music beat the views flash briefly and
the beat counter ticks.

The front and side views are cameras that follow the body (a smoothed pelvis track, so local sway still
shows; floor marks every 0.5 m scroll by to show travel) at one scale chosen so that the body's whole height
range over the section fills the panel; the three panels have the same pixel size. Speed: every static part
(grids, floor, path, beat ticks, speed curve, title) is drawn once and restored per frame; only the figures,
the floor marks, the cursor, a beat flash and the header are drawn per frame (the header only when its text
changes). Frames go as raw RGB straight into the ffmpeg binary bundled with imageio-ffmpeg, which also muxes
the song.
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
FLASH_LEVELS = 4                 # the flash is drawn in this many steps of tint...
FLASH_ALPHA = 0.35               # ...up to this opacity of yellow on a beat
CONTACT_SHEET = (4, 2)           # rows, columns of the png contact sheet
DEFAULT_SIZE = (640, 360)        # pixels; the figure fills its panel, so this is plenty for a preview
FLOOR_MARK_SPACING = 0.5         # metres between the scrolling floor marks
CAMERA_SMOOTHING = 1.0           # seconds: the side cameras follow a moving average of the pelvis...
CAMERA_SLACK = 0.2               # ...that stays within this many metres of it (the body never leaves the view)
_LEFT, _RIGHT, _CENTRE = "#1f77b4", "#d62728", "#333333"
_VIEWS = {"front": (0, 1), "side": (2, 1), "top": (0, 2)}    # (horizontal, vertical) coordinate of each view


def _bone_colour(name: str) -> str:
    return _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _CENTRE


def bone_chains(parents, names) -> list[tuple[list[int], str]]:
    """The skeleton as a few one-coloured polylines: [(joint indices, colour), ...].

    A bone takes its child joint's side colour (left, right, centre); it extends the chain that ends at its
    parent when that chain has the same colour, else it starts a new chain. SMPL gives 5 chains (spine, two
    legs, two arms), so a view draws 5 paths instead of 23 segments.
    """
    chains, open_end = [], {}          # open_end: joint -> the chain that ends there and may still grow
    for j, p in enumerate(parents):
        if p < 0:
            continue
        colour = _bone_colour(names[j])
        chain = open_end.get(p)
        if chain is not None and chain[1] == colour:
            del open_end[p]
        else:
            chain = ([p], colour)
            chains.append(chain)
        chain[0].append(j)
        open_end[j] = chain
    return chains


def follow_camera(track: np.ndarray, fps: float, *, smoothing: float = CAMERA_SMOOTHING,
                  slack: float = CAMERA_SLACK) -> np.ndarray:
    """(T,) camera positions, metres, following a (T,) pelvis coordinate: a centred moving average over
    ``smoothing`` seconds (ends padded with the end values), kept within ``slack`` metres of the pelvis."""
    track = np.asarray(track, dtype=np.float64)
    width = max(1, int(round(smoothing * fps)) // 2 * 2 + 1)
    padded = np.pad(track, width // 2, mode="edge")
    smooth = np.convolve(padded, np.ones(width) / width, mode="valid")
    return np.clip(smooth, track - slack, track + slack)


def vertical_range(joints: np.ndarray, margin: float = 0.08) -> tuple[float, float]:
    """(bottom, top) metres the front and side views show: the floor (or the lowest joint) up to the highest
    joint of ``joints`` (T, J, 3), Y up, with ``margin``; at least 1 m above the floor."""
    heights = np.asarray(joints)[..., 1]
    return min(0.0, float(heights.min())) - margin, max(float(heights.max()), 1.0) + margin


class _CachedText:
    """A header text drawn only when it changes; otherwise its pixels are restored (glyphs are costly)."""

    def __init__(self, renderer, x: float, y: float, fontsize: float, left_px: float, right_px: float,
                 header_px: int):
        from matplotlib.transforms import Bbox

        self.canvas, self.figure = renderer.canvas, renderer.figure
        self.artist = self.figure.text(x, y, "", fontsize=fontsize, va="center", family="monospace", animated=True)
        height = renderer.size[1]
        self.box = Bbox.from_extents(left_px, height - header_px, right_px, height)
        self.text, self.pixels = None, None

    def draw(self, text: str) -> None:
        if text == self.text:
            self.canvas.restore_region(self.pixels)
            return
        self.artist.set_text(text)
        self.figure.draw_artist(self.artist)
        self.text, self.pixels = text, self.canvas.copy_from_bbox(self.box)


class StickFigureRenderer:
    """Draws frame ``i`` of ``joints`` (T, 24, 3) metres, Y up, at ``fps`` into an (H, W, 3) uint8 image.

    ``beat_times``: (K,) seconds of the music beats (may be empty), on the song's clock. ``start_time``: the
    song time of frame 0 (a section of a longer dance), used for the clock, the beat counter and the timeline.
    ``size``: (width, height) pixels, even.
    """

    def __init__(self, joints: np.ndarray, parents, names, fps: float, beat_times=(), size=DEFAULT_SIZE,
                 title: str = "", start_time: float = 0.0):
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        self.joints = np.asarray(joints, dtype=np.float64)
        self.fps = float(fps)
        self.start_time = float(start_time)
        self.num_frames = len(self.joints)
        self.duration = self.num_frames / self.fps
        self.chains = bone_chains(parents, names)
        beat_times = np.sort(np.asarray(beat_times, dtype=np.float64))
        self.all_beats = beat_times
        self.beat_times = beat_times[(beat_times >= self.start_time - 0.5 / self.fps)
                                     & (beat_times < self.start_time + self.duration)]
        self.flash = self._flash_curve()
        width, height = int(size[0]), int(size[1])
        self.size = (width, height)
        scale = height / 360.0                                   # fonts and lines grow with the frame
        self.figure = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)

        # Layout in pixels: a header strip, three equal panels, the timeline.
        header, gap, side = round(22 * scale), round(6 * scale), round(6 * scale)
        timeline_h, timeline_gap = round(0.17 * height), round(20 * scale)
        panel_w = (width - 2 * side - 2 * gap) // 3                  # whole pixels: the panels are equal
        side = (width - 3 * panel_w - 2 * gap) // 2
        panel_h = height - header - timeline_h - timeline_gap - round(4 * scale)
        panel_bottom = timeline_h + timeline_gap
        self.axes = {}
        for k, name in enumerate(_VIEWS):
            left = side + k * (panel_w + gap)
            self.axes[name] = self.figure.add_axes((left / width, panel_bottom / height, panel_w / width,
                                                    panel_h / height))
        self.timeline = self.figure.add_axes((side / width, round(16 * scale) / height,
                                              (width - 2 * side) / width, (timeline_h - round(16 * scale)) / height))

        # Side views: one metres-per-pixel scale for both, set by the body's height range.
        bottom, top = vertical_range(self.joints)
        metres_per_pixel = (top - bottom) / panel_h
        self.half_width = 0.5 * panel_w * metres_per_pixel
        root = self.joints[:, 0]
        self.camera = {"front": follow_camera(root[:, 0], self.fps), "side": follow_camera(root[:, 2], self.fps)}
        self.floor_bottom = bottom
        fontsize = 8 * scale
        for name, ax in self.axes.items():
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#bbbbbb")
            ax.text(0.03, 0.97, name, transform=ax.transAxes, fontsize=fontsize, color="#666666", va="top")
            if name == "top":
                self._setup_top_view(ax, panel_w / panel_h)
            else:
                ax.set_xlim(-self.half_width, self.half_width)
                ax.set_ylim(bottom, top)
                ax.axhspan(bottom - 1, 0, color="#eeeeee", zorder=0)
                ax.axhline(0, color="#999999", lw=1, zorder=0)
        # Per view one animated collection: the scrolling floor marks (side views), then the bone chains.
        self.num_marks = int(math.ceil(2 * self.half_width / FLOOR_MARK_SPACING)) + 2
        self.collections = {}
        for name, ax in self.axes.items():
            marks = self.num_marks if name in self.camera else 0
            self.collections[name] = ax.add_collection(LineCollection(
                [], colors=["#bbbbbb"] * marks + [colour for _, colour in self.chains],
                linewidths=[scale] * marks + [2.6 * scale] * len(self.chains), capstyle="round",
                joinstyle="round", animated=True, zorder=2))
        self._setup_timeline(fontsize)
        self.title = title
        header_y = 1 - 0.5 * header / height
        room = int(0.38 * width / (0.6 * fontsize * 100 / 72))     # characters that fit right of the labels
        shown = title if len(title) <= room else title[: max(room - 1, 1)] + "…"
        self.figure.text(1 - side / width, header_y, shown, fontsize=fontsize, ha="right", va="center",
                         color="#555555")
        self.clock = _CachedText(self, side / width, header_y, 1.15 * fontsize, 0.0, 0.2 * width, header)
        self.beat_label = _CachedText(self, 0.2, header_y, 1.15 * fontsize, 0.2 * width, 0.6 * width, header)
        self.canvas.draw()
        self.backgrounds = self._flash_backgrounds()

    def _flash_backgrounds(self) -> list:
        """The static picture with the views tinted for each flash level 0..FLASH_LEVELS (restored per frame:
        a flash costs nothing to draw, and a level held over several frames costs the encoder nothing)."""
        backgrounds = [self.canvas.copy_from_bbox(self.figure.bbox)]
        tints = [ax.axvspan(-1e3, 1e3, color="#ffcc00", alpha=0.0, zorder=0.5, animated=True)
                 for ax in self.axes.values()]
        for level in range(1, FLASH_LEVELS + 1):
            self.canvas.restore_region(backgrounds[0])
            for ax, tint in zip(self.axes.values(), tints):
                tint.set_alpha(FLASH_ALPHA * level / FLASH_LEVELS)
                ax.draw_artist(tint)
            backgrounds.append(self.canvas.copy_from_bbox(self.figure.bbox))
        return backgrounds

    def _setup_top_view(self, ax, aspect: float) -> None:
        """The whole floor path at the panel's aspect, +z (the body's front) pointing down, a 0.5 m grid."""
        points = self.joints[..., [0, 2]].reshape(-1, 2)
        lo, hi = points.min(0) - 0.2, points.max(0) + 0.2
        centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 0.6)
        half = np.maximum(half, [half[1] * aspect, half[0] / aspect])       # same scale on both axes
        ax.set_xlim(centre[0] - half[0], centre[0] + half[0])
        ax.set_ylim(centre[1] + half[1], centre[1] - half[1])
        for x in np.arange(math.floor(centre[0] - half[0]), math.ceil(centre[0] + half[0]) + 0.01, 0.5):
            ax.axvline(x, color="#e4e4e4", lw=0.6, zorder=0)
        for z in np.arange(math.floor(centre[1] - half[1]), math.ceil(centre[1] + half[1]) + 0.01, 0.5):
            ax.axhline(z, color="#e4e4e4", lw=0.6, zorder=0)
        ax.plot(self.joints[:, 0, 0], self.joints[:, 0, 2], color="#bbbbbb", lw=0.8, zorder=1)

    def _setup_timeline(self, fontsize: float) -> None:
        tl = self.timeline
        tl.set_xlim(self.start_time, self.start_time + self.duration)
        tl.set_ylim(0, 1.05)
        tl.set_yticks([])
        tl.tick_params(labelsize=0.85 * fontsize, pad=1, length=2)
        for spine in tl.spines.values():
            spine.set_color("#bbbbbb")
        tl.text(0.995, 0.93, "ticks: music beats   grey: mean joint speed", transform=tl.transAxes, ha="right",
                va="top", fontsize=0.8 * fontsize, color="#777777")
        if len(self.beat_times):
            tl.vlines(self.beat_times, 0, 1.05, color="#ff9900", lw=0.8)
        speed = np.linalg.norm(np.diff(self.joints, axis=0), axis=-1).mean(-1) * self.fps
        if len(speed):
            tl.plot(self.start_time + (np.arange(len(speed)) + 0.5) / self.fps, speed / max(speed.max(), 1e-9),
                    color="#777777", lw=0.7)
        self.cursor = tl.axvline(self.start_time, color="black", lw=1.5, animated=True)

    def _flash_curve(self) -> np.ndarray:
        times = self.start_time + np.arange(self.num_frames) / self.fps
        flash = np.zeros(self.num_frames)
        for beat in self.beat_times:
            after = times - beat
            # A beat at time b lights the frame nearest b (not only later ones, or coarse frame rates miss it).
            after = np.where(np.abs(after) <= 0.5 / self.fps, 0.0, after)
            live = (after >= 0) & (after < 4 * FLASH_SECONDS)
            flash[live] = np.maximum(flash[live], np.exp(-after[live] / FLASH_SECONDS))
        return flash

    def beats_before(self, frame: int) -> int:
        """Music beats heard up to frame ``frame`` (counted from the song's start)."""
        now = self.start_time + frame / self.fps + 0.5 / self.fps
        return int(np.searchsorted(self.all_beats, now, side="right"))

    def flash_level(self, i: int) -> int:
        """How strongly frame ``i``'s views are tinted: 0 (not) to FLASH_LEVELS (on a beat)."""
        return int(round(self.flash[i] * FLASH_LEVELS))

    def polylines(self, i: int, view: str) -> list[np.ndarray]:
        """What frame ``i`` draws in ``view``: the floor marks (side views) and the bone chains, as (n, 2)
        polylines in the view's coordinates (side views relative to their camera)."""
        a, b = _VIEWS[view]
        pose = self.joints[i][:, [a, b]]
        lines = []
        if view in self.camera:
            camera = self.camera[view][i]
            pose = pose - np.array([camera, 0.0])
            first = math.floor((camera - self.half_width) / FLOOR_MARK_SPACING)
            for x in (first + np.arange(self.num_marks)) * FLOOR_MARK_SPACING - camera:
                lines.append(np.array([[x, self.floor_bottom], [x, 0.0]]))
        return lines + [pose[chain] for chain, _ in self.chains]

    def draw(self, i: int) -> None:
        """Draw frame ``i`` into the canvas (``image`` and ``rgba`` read it)."""
        self.canvas.restore_region(self.backgrounds[self.flash_level(i)])
        now = self.start_time + i / self.fps
        self.clock.draw(f"t {now:5.1f} s")
        self.beat_label.draw(f"beat {self.beats_before(i):3d}/{len(self.all_beats)}"
                             + ("  *BEAT*" if self.flash[i] > 0.99 else ""))
        for name, ax in self.axes.items():
            self.collections[name].set_segments(self.polylines(i, name))
            ax.draw_artist(self.collections[name])
        self.cursor.set_xdata([now, now])
        self.timeline.draw_artist(self.cursor)

    def rgba(self) -> memoryview:
        """The canvas's (H, W, 4) RGBA pixels, not copied (valid until the next ``draw``)."""
        return self.canvas.buffer_rgba()

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB copy of what the canvas shows."""
        return np.ascontiguousarray(np.asarray(self.canvas.buffer_rgba())[:, :, :3])

    def frame(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of frame ``i``."""
        self.draw(i)
        return self.image()

    def close(self) -> None:
        self.figure.clear()


# ---------------------------------------------------------------------------------------------- outputs
def _ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def _write_mp4(renderer: StickFigureRenderer, path: Path, audio: Path | None, audio_start: float = 0.0) -> None:
    width, height = renderer.size
    duration = renderer.num_frames / renderer.fps
    # RGBA as the canvas holds it: ffmpeg's conversion is cheaper than numpy's strided RGB copy
    command = [_ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgba",
               "-s", f"{width}x{height}", "-r", f"{renderer.fps:g}", "-i", "-"]
    if audio is not None:
        command += (["-ss", f"{audio_start:.6f}"] if audio_start > 0 else []) + ["-i", str(audio)]
        command += ["-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "160k"]
    # no B-frames: a quarter less encoding work for these mostly static pictures, at the same size
    command += ["-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-crf", "23", "-pix_fmt", "yuv420p",
                "-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", str(path)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(renderer.num_frames):
            renderer.draw(i)
            process.stdin.write(renderer.rgba())
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


def section(duration: float, start: float | None = None, end: float | None = None,
            seconds: float | None = None) -> tuple[float, float]:
    """The (start, end) seconds of a ``duration``-second dance to preview; E3D2Error when they make no sense.

    ``start`` defaults to 0, ``end`` to the dance's end (a later one is cut to it); ``seconds`` is the length
    from ``start`` (give it or ``end``, not both).
    """
    if start is not None and not (math.isfinite(start) and start >= 0):
        raise E3D2Error(f"--start must be a time >= 0 s, got {start!r}")
    if end is not None and seconds is not None:
        raise E3D2Error("give --end or --seconds, not both")
    if seconds is not None and not (seconds > 0):
        raise E3D2Error(f"--seconds must be positive, got {seconds!r}")
    first = float(start or 0.0)
    if first >= duration:
        raise E3D2Error(f"--start {first:g} s is at or after the end of the dance ({duration:.2f} s)")
    last = duration if end is None and seconds is None else (end if end is not None else first + seconds)
    if not last > first:
        raise E3D2Error(f"--end ({last:g} s) must come after --start ({first:g} s)")
    return first, min(float(last), duration)


def render_preview(motion, output, *, audio=None, fps: float = 30.0, seconds: float | None = None,
                   start: float | None = None, end: float | None = None, size: tuple[int, int] | None = None,
                   skeleton=None) -> Path:
    """Write a preview of ``motion`` (a :class:`Motion` or a Motion ``.npz`` path) to ``output``.

    ``output`` ends in .mp4 (video; with ``audio``, the song is its sound track), .gif (animation, at most
    ``GIF_MAX_SECONDS``) or .png (contact sheet of 8 frames). ``fps``: preview frame rate (the motion is
    resampled). ``start``/``end``: only the section between these times, seconds (the motion's frame 0 is the
    song's start; the clock, beats and sound track follow the section); ``seconds``: the section's length from
    ``start`` instead of ``end``. ``audio``: a song whose beats are marked (librosa beats as in
    :func:`e3d2_core.audio.music_beats`). ``size``: frame (width, height) in pixels (default 640x360).
    Written atomically; raises :class:`E3D2Error` on bad input.
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
    if not isinstance(motion, Motion):
        motion = Motion.load(motion)
    first, last = section(motion.duration, start, end, seconds)
    skeleton = skeleton or default_skeleton()
    if motion.fps != fps:
        motion = motion.resample(fps)
    begin = int(math.ceil(first * fps - 1e-9))
    motion = motion.trim(begin, max(begin + 1, int(math.ceil(last * fps - 1e-9))))
    if suffix == ".gif" and motion.duration > GIF_MAX_SECONDS + 1e-6:
        raise E3D2Error(f"a gif preview is limited to {GIF_MAX_SECONDS:g} s (this one is {motion.duration:.1f} s); "
                        f"use --start/--end or write .mp4", path=output)
    beat_times = np.zeros(0)
    audio_path = None
    if audio is not None:
        beat_times = audio_mod.tracked_beats(audio, fps=60.0) / 60.0     # decodes (validates) unless cached
        audio_path = Path(audio).resolve()
    size = DEFAULT_SIZE if size is None else size
    width, height = (int(size[0]) // 2 * 2, int(size[1]) // 2 * 2)          # libx264 needs even sizes
    if width < 160 or height < 90:
        raise E3D2Error(f"preview size must be at least 160x90 pixels, got {size[0]}x{size[1]}")
    title = Path(audio).name if audio is not None else ""
    renderer = StickFigureRenderer(motion.joints(skeleton), skeleton.parents, skeleton.names, fps, beat_times,
                                   (width, height), title=title, start_time=begin / fps)
    try:
        with atomic_path(output) as tmp:
            if suffix == ".mp4":
                _write_mp4(renderer, tmp, audio_path, audio_start=begin / fps)
            elif suffix == ".gif":
                _write_gif(renderer, tmp)
            else:
                _write_contact_sheet(renderer, tmp)
    finally:
        renderer.close()
    return output
