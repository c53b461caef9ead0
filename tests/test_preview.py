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
