"""What a new user reads: one clear line for unreadable audio, the sub-command's own usage for an unknown flag,
a note when --seconds outruns the song, and a packaging config setuptools accepts without warnings."""
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

from e3d2_core import cli

ROOT = Path(__file__).resolve().parent.parent


def test_a_text_file_named_mp3_is_called_unreadable_audio(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", {"features": "e3d2_core.commands.features"})
    fake = tmp_path / "song.mp3"
    fake.write_text("these are liner notes, not music\n" * 20)
    assert cli.main(["features", str(fake), "-o", str(tmp_path / "f.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    line = next(l for l in err if l.startswith("e3d2 features: error:"))     # libmpg123 may add "Note:" lines
    assert f"{fake}: not a readable audio file" in line and "whatever its name says" in line
    assert "does not exist" not in line and not (tmp_path / "f.npz").exists()


def test_an_unknown_flag_shows_the_subcommands_usage(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", {"preview": "e3d2_core.commands.preview",
                                          "features": "e3d2_core.commands.features"})
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["preview", str(tmp_path / "m.npz"), "-o", str(tmp_path / "p.png"), "--bogus", "3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: e3d2 preview ") and "--start S" in err
    assert err.strip().endswith("e3d2 preview: error: unrecognized arguments: --bogus 3")
    # known flags still reach the command (which then reports its own one-line error)
    assert cli.main(["features", str(tmp_path / "none.ogg"), "-o", str(tmp_path / "x.npz")]) == 2
    assert "none.ogg: no such audio file" in capsys.readouterr().err


def test_seconds_beyond_the_song_are_reported(tmp_path, capsys, monkeypatch, tiny_bundle_path):
    import soundfile

    from e3d2_core.motion import Motion

    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "COMMANDS", {"generate": "e3d2_core.commands.generate"})
    sr, t = 22050, np.arange(2 * 22050) / 22050
    song = tmp_path / "two_seconds.wav"
    soundfile.write(song, (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32),
                    sr)
    out = tmp_path / "dance.npz"
    args = ["generate", str(song), "-o", str(out), "--checkpoint", str(tiny_bundle_path), "--quiet"]
    assert cli.main(args + ["--seconds", "500"]) == 0
    err = capsys.readouterr().err
    assert f"e3d2 generate: note: {song} is only 2.0 s long: the dance lasts 2.0 s, not the 500 s asked for" in err
    assert Motion.load(out).duration <= 2.0
    from e3d2_core.commands.generate import _note_a_short_song

    _note_a_short_song(song, 1.5)                  # within the song: nothing to say
    _note_a_short_song(song, None)
    assert capsys.readouterr().err == ""


def test_pyproject_license_is_an_spdx_string_setuptools_accepts_silently():
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "MIT"
    assert not [w for w in caught if "license" in str(w.message).lower()]
