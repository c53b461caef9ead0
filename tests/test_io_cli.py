"""`e3d2 import` through the CLI: real files import; bad input exits 2 with one line and writes nothing."""
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from e3d2_core import cli
from e3d2_core.motion import Motion

DATA = Path(__file__).parent / "data"
CLIP = DATA / "cmu_salsa_60_01_clip.bvh"
CSV = DATA / "aistpp" / "true_gJS_sBM_cAll_d01_mJS3_ch02_slice7.csv"


@pytest.fixture(autouse=True)
def only_import_command(monkeypatch):
    # this branch has only the import command; the others live in their own modules
    monkeypatch.setattr(cli, "COMMANDS", {"import": "e3d2_core.commands.import_motion"})


def test_import_real_bvh(tmp_path, capsys):
    out = tmp_path / "salsa.npz"
    assert cli.main(["import", str(CLIP), "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"imported {CLIP.name} (bvh): 480 frames at 120 fps, 4.00 s -> {out}"
    motion = Motion.load(out)
    assert motion.num_frames == 480 and motion.fps == 120.0
    assert motion.meta["source"] == CLIP.name and motion.meta["format"] == "bvh"
    assert motion.meta["source_fps"] == 120.0 and motion.meta["bvh_skeleton"] == "CMU"


def test_import_real_csv_z_up(tmp_path, capsys):
    out = tmp_path / "aist.npz"
    assert cli.main(["import", str(CSV), "-o", str(out), "--fps", "30", "--up", "z"]) == 0
    assert "150 frames at 30 fps, 5.00 s" in capsys.readouterr().out
    motion = Motion.load(out)
    assert motion.meta["format"] == "joints" and motion.meta["source_fps"] == 30.0


def test_import_with_smpl_model_stores_its_skeleton(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_skeleton import write_synthetic_smpl_model

    model = tmp_path / "SMPL_NEUTRAL.pkl"
    write_synthetic_smpl_model(model)
    out = tmp_path / "shaped.npz"
    assert cli.main(["import", str(CLIP), "-o", str(out), "--smpl-model", str(model)]) == 0
    motion = Motion.load(out)
    skeleton = motion.skeleton
    assert skeleton.source.startswith("smplx model")
    joints = motion.joints().astype(np.float64)
    parents = np.array(skeleton.parents[1:])
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(skeleton.bone_lengths()[1:], lengths.shape), atol=1e-5)


def test_help_says_pickles_are_read_only_when_named(capsys):
    with pytest.raises(SystemExit):
        cli.main(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "read ONLY when you name their format with --format" in text
    assert "--format {motion,aistpp,bvh,joints,bailando,edge}" in text


def _bvh_text():
    return CLIP.read_text()


BAD_INPUTS = {
    "missing": ("missing.bvh", None, [], "no such"),
    "empty bvh": ("empty.bvh", "", [], "empty"),
    "truncated bvh": ("trunc.bvh", lambda: _bvh_text()[:300000], [], "truncated"),
    "unknown skeleton": ("robot.bvh", lambda: _bvh_text().replace("lThigh", "leftUpperLeg"), [],
                         "unknown BVH skeleton.*lThigh"),
    "empty pkl": ("empty.pkl", b"", [], "empty"),
    "truncated pkl": ("t.pkl", lambda: pickle.dumps({"smpl_poses": np.zeros((3, 72))})[:40], [], "truncated"),
    "pkl wrong keys": ("k.pkl", lambda: pickle.dumps({"poses": np.zeros((3, 72))}), [], "missing 'smpl_poses'"),
    "csv no fps": ("a.csv", lambda: CSV.read_text(), [], "--fps"),
    "csv wrong width": ("w.csv", lambda: "\n".join(",".join(["0.1"] * 70) for _ in range(5)), ["--fps", "30"],
                        "72"),
    "csv truncated row": ("r.csv", lambda: CSV.read_text()[:-500], ["--fps", "30"], "malformed CSV"),
    "csv text": ("x.csv", "hello,world\nfoo,bar\n", ["--fps", "30"], "malformed CSV"),
    "csv nan": ("n.csv", lambda: CSV.read_text().replace(CSV.read_text().split(",")[5], "nan", 1),
                ["--fps", "30"], "NaN"),
    "bad fps": ("f.csv", lambda: CSV.read_text(), ["--fps", "-3"], "fps"),
    "unknown extension": ("motion.fbx", "x", [], "extension"),
    "pickled npy without format": ("b.npy", "bailando", ["--fps", "60"], "--format bailando"),
    "edge wrong content": ("e.pkl", lambda: pickle.dumps({"something": 1}), ["--format", "edge"], "full_pose"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    name, content, extra, message = BAD_INPUTS[case]
    source = tmp_path / name
    if content == "bailando":
        np.save(source, {"pred_position": np.zeros((3, 72))}, allow_pickle=True)
    elif content is not None:
        content = content() if callable(content) else content
        source.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out.npz"
    assert cli.main(["import", str(source), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("e3d2 import: error: ")
    assert str(source) in err
    assert __import__("re").search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({name} - ({name} if content is None else set()))


def test_failed_import_keeps_an_existing_output(tmp_path):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"the user's file")
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT hip\n{")
    assert cli.main(["import", str(bad), "-o", str(out)]) == 2
    assert out.read_bytes() == b"the user's file"
