"""Stick-figure previews: mp4 (frame count, duration, sound track), gif, png contact sheet, bad input."""
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from e3d2_core import cli
from e3d2_core.errors import E3D2Error
from e3d2_core.motion import Motion
from e3d2_core.preview import StickFigureRenderer, render_preview
from e3d2_core.skeleton import default_skeleton

AMEN = Path(__file__).parent / "data" / "loop_amen.flac"   # CC0 drum loop, 1.75 s, beats at 0.25/0.82/1.33 s


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))


def swinging_motion(seconds=2.0, fps=60.0):
    t = np.arange(int(seconds * fps)) / fps
    poses = np.zeros((len(t), 24, 3), np.float32)
    poses[:, 16, 2] = 0.9 * np.sin(2 * np.pi * t)
    poses[:, 17, 2] = -0.9 * np.sin(2 * np.pi * t)
    poses[:, 4, 0] = 0.6 * np.abs(np.sin(np.pi * t))
    trans = np.stack([0.2 * t, 0.93 + 0.03 * np.sin(4 * np.pi * t), 0 * t], -1)
    return Motion(poses, trans, fps)


def probe(path):
    """(video frame count, duration seconds, has audio) from the bundled ffmpeg."""
    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0",
                          "-c", "copy", "-f", "null", "-"], capture_output=True, text=True)
    frames = int(re.findall(r"frame=\s*(\d+)", run.stderr)[-1])
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", run.stderr).groups()
    return frames, int(h) * 3600 + int(m) * 60 + float(s), "Audio:" in run.stderr


def test_mp4_has_every_frame_and_the_song(tmp_path):
    motion_path = swinging_motion().save(tmp_path / "dance.npz")
    out = tmp_path / "preview.mp4"
    render_preview(motion_path, out, audio=AMEN, fps=15, size=(320, 180))
    frames, duration, has_audio = probe(out)
    assert frames == 30 and abs(duration - 2.0) < 0.1 and has_audio
    silent = tmp_path / "silent.mp4"
    render_preview(motion_path, silent, fps=10, seconds=1.0, size=(320, 180))
    frames, duration, has_audio = probe(silent)
    assert frames == 10 and abs(duration - 1.0) < 0.1 and not has_audio


def test_beats_flash_and_drawing_follows_the_body():
    skeleton = default_skeleton()
    motion = swinging_motion(seconds=1.0, fps=20)
    renderer = StickFigureRenderer(motion.joints(), skeleton.parents, skeleton.names, 20, [0.5], (320, 180))
    assert renderer.flash[10] == pytest.approx(1.0) and renderer.flash[9] == 0.0 and renderer.flash[12] < 0.9
    on_beat, before = renderer.frame(10).astype(int), renderer.frame(9).astype(int)
    assert on_beat.shape == (180, 320, 3)
    # The flash tints the views' white background yellow: less blue, same red.
    white_before = (before == 255).all(-1).mean()
    assert (on_beat == 255).all(-1).mean() < white_before - 0.2
    assert not np.array_equal(renderer.frame(3), renderer.frame(5))      # the body moves


def test_png_contact_sheet_and_gif(tmp_path):
    motion = swinging_motion(seconds=1.0, fps=30)
    sheet = render_preview(motion, tmp_path / "sheet.png", audio=AMEN, size=(200, 120))
    assert Image.open(sheet).size == (2 * 200, 4 * 120)
    silence = tmp_path / "silence.wav"
    __import__("soundfile").write(silence, np.zeros(22050, np.float32), 22050)
    quiet = render_preview(motion, tmp_path / "quiet.png", audio=silence, size=(200, 120))  # no beats: still fine
    assert Image.open(quiet).size == (400, 480)
    gif = render_preview(motion, tmp_path / "anim.gif", fps=10, size=(200, 120))
    with Image.open(gif) as image:
        assert image.n_frames == 10 and image.size == (200, 120)


def test_bad_inputs_fail_cleanly(tmp_path):
    motion_path = swinging_motion(seconds=0.5).save(tmp_path / "m.npz")
    not_motion = tmp_path / "other.npz"
    np.savez(not_motion, x=np.zeros(3))
    noise = tmp_path / "noise.ogg"
    noise.write_bytes(b"\x00\x01garbage" * 100)
    cases = [
        (dict(motion=tmp_path / "missing.npz", output=tmp_path / "a.mp4"), "no such motion file"),
        (dict(motion=not_motion, output=tmp_path / "b.mp4"), "not a Motion file"),
        (dict(motion=motion_path, output=tmp_path / "c.avi"), "must end in"),
        (dict(motion=motion_path, output=tmp_path / "d.mp4", audio=noise), "not a readable audio file"),
        (dict(motion=motion_path, output=tmp_path / "e.mp4", audio=tmp_path / "no.ogg"), "no such audio file"),
        (dict(motion=motion_path, output=tmp_path / "f.mp4", fps=0), "fps must be"),
        (dict(motion=motion_path, output=tmp_path / "g.mp4", seconds=-1), "--seconds must be positive"),
    ]
    for kwargs, message in cases:
        with pytest.raises(E3D2Error, match=message):
            render_preview(**kwargs)
        assert not Path(kwargs["output"]).exists()
    long_motion = Motion(np.zeros((61 * 10, 24, 3)), np.zeros((61 * 10, 3)), 10)
    with pytest.raises(E3D2Error, match="gif preview is limited to 60 s"):
        render_preview(long_motion, tmp_path / "long.gif", fps=10)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "cache")
    assert left == ["m.npz", "noise.ogg", "other.npz"]                 # no temporary file left behind


def test_preview_cli(tmp_path, capsys):
    motion_path = swinging_motion(seconds=0.5).save(tmp_path / "m.npz")
    saved = cli.COMMANDS
    cli.COMMANDS = {"preview": saved["preview"]}      # other commands live on other branches
    try:
        assert cli.main(["preview", str(motion_path), "-o", str(tmp_path / "p.png")]) == 0
        assert (tmp_path / "p.png").is_file()
        assert cli.main(["preview", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "q.mp4")]) == 2
        assert "no such motion file" in capsys.readouterr().err and not (tmp_path / "q.mp4").exists()
    finally:
        cli.COMMANDS = saved


def decoded_audio(path, rate=8000):
    """Mono float32 samples of a file's first audio stream, decoded by the bundled ffmpeg."""
    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar",
                          str(rate), "-f", "f32le", "-"], capture_output=True, check=True)
    return np.frombuffer(run.stdout, np.float32)


def test_a_section_has_its_frames_clock_beats_and_sound(tmp_path):
    out = tmp_path / "section.mp4"
    render_preview(swinging_motion(), out, audio=AMEN, fps=20, start=0.5, end=1.5, size=(320, 180))
    frames, duration, has_audio = probe(out)
    assert frames == 20 and abs(duration - 1.0) < 0.1 and has_audio
    # the sound track is the song from 0.5 s: it lines up with the song 0.5 s in, not with its start
    song, clip = decoded_audio(AMEN), decoded_audio(out)[: 8000 // 2]
    lags = np.arange(0, 8000)                                         # 0 .. 1 s, in samples
    match = [np.dot(song[lag:lag + len(clip)], clip) for lag in lags]
    assert abs(lags[int(np.argmax(match))] / 8000 - 0.5) < 0.03
    # --seconds counts from --start; a section running past the end stops at the end
    render_preview(swinging_motion(), tmp_path / "b.mp4", fps=20, start=1.0, seconds=5.0, size=(320, 180))
    assert probe(tmp_path / "b.mp4")[0] == 20


def test_section_clock_and_beat_counter_follow_the_song():
    skeleton = default_skeleton()
    motion = swinging_motion(seconds=1.0, fps=20)
    beats = [0.25, 0.82, 1.33, 1.6]
    renderer = StickFigureRenderer(motion.joints(), skeleton.parents, skeleton.names, 20, beats, (320, 180),
                                   start_time=1.0)
    assert list(renderer.beat_times) == [1.33, 1.6]                   # the beats inside the section
    assert renderer.beats_before(0) == 2 and renderer.beats_before(19) == 4   # counted from the song's start
    assert renderer.flash[round(0.33 * 20)] == pytest.approx(1.0)       # 1.33 s is frame 6.6 -> 7 of the section
    renderer.draw(7)
    assert renderer.clock.text == "t   1.4 s" and renderer.beat_label.text == "beat   3/4  *BEAT*"


@pytest.mark.parametrize("start, end, seconds, message", [
    (2.5, None, None, "at or after the end of the dance"),
    (1.0, 0.5, None, "must come after --start"),
    (0.5, 1.0, 0.5, "give --end or --seconds, not both"),
    (-1.0, None, None, "--start must be a time >= 0"),
])
def test_bad_sections_are_refused(tmp_path, start, end, seconds, message):
    with pytest.raises(E3D2Error, match=message):
        render_preview(swinging_motion(), tmp_path / "x.mp4", start=start, end=end, seconds=seconds)
    assert not (tmp_path / "x.mp4").exists()


def body_rows_and_columns(image, box):
    """Rows and columns of the bone colours (left blue, right red) inside pixel box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1].astype(int)
    blue = (crop[..., 2] > 150) & (crop[..., 0] < 90)
    red = (crop[..., 0] > 170) & (crop[..., 1] < 90)
    rows, cols = np.nonzero(blue | red)
    return rows, cols


def panel_boxes(renderer):
    height = renderer.size[1]
    boxes = {}
    for name, ax in renderer.axes.items():
        x0, y0, x1, y1 = ax.get_window_extent().extents
        boxes[name] = (round(x0), round(height - y1), round(x1), round(height - y0))
    return boxes


def test_panels_are_equal_and_the_figure_fills_them_while_travelling():
    skeleton = default_skeleton()
    t = np.arange(90) / 30
    poses = np.zeros((90, 24, 3), np.float32)
    trans = np.stack([1.5 * t, np.full_like(t, 0.93), -0.5 * t], -1)          # walks 4.5 m sideways, 1.5 m back
    motion = Motion(poses, trans, 30)
    renderer = StickFigureRenderer(motion.joints(), skeleton.parents, skeleton.names, 30, [], (640, 360))
    boxes = panel_boxes(renderer)
    sizes = {(b[2] - b[0], b[3] - b[1]) for b in boxes.values()}
    assert len(sizes) == 1                                                   # front, side and top: one size
    (panel_w, panel_h), = sizes
    assert panel_h > 0.6 * 360
    for frame in (0, 45, 89):
        image = renderer.frame(frame)
        for view in ("front", "side"):
            rows, cols = body_rows_and_columns(image, boxes[view])
            # the standing body (feet to shoulders, ~1.4 m of its ~1.7 m) spans most of the panel's height...
            assert rows.max() - rows.min() > 0.65 * panel_h, (frame, view)
            # ...and stays in the middle of the panel however far it has walked
            assert 0.25 * panel_w < cols.mean() < 0.75 * panel_w, (frame, view)


def test_bone_chains_draw_every_bone_once():
    from e3d2_core.preview import bone_chains

    skeleton = default_skeleton()
    chains = bone_chains(skeleton.parents, skeleton.names)
    bones = sorted((chain[k + 1], chain[k]) for chain, _ in chains for k in range(len(chain) - 1))
    assert bones == sorted((j, p) for j, p in enumerate(skeleton.parents) if p >= 0)
    assert len(chains) == 5
    for chain, colour in chains:
        sides = {skeleton.names[j].split("_")[0] for j in chain[1:]}
        assert len(sides) == 1 or not sides & {"left", "right"}               # one side per chain


def test_preview_cli_section_and_size(tmp_path, capsys):
    motion_path = swinging_motion(seconds=2.0).save(tmp_path / "m.npz")
    saved = cli.COMMANDS
    cli.COMMANDS = {"preview": saved["preview"]}
    try:
        assert cli.main(["preview", str(motion_path), "-o", str(tmp_path / "p.mp4"), "--start", "0.5", "--end",
                         "1.5", "--fps", "10", "--size", "320x180"]) == 0
        assert probe(tmp_path / "p.mp4")[0] == 10
        assert cli.main(["preview", str(motion_path), "-o", str(tmp_path / "q.mp4"), "--start", "3"]) == 2
        assert "--start 3 s is at or after the end of the dance (2.00 s)" in capsys.readouterr().err
    finally:
        cli.COMMANDS = saved
