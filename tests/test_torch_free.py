"""The torch-free bottom layer: rotations, skeleton, Motion I/O and resampling work in a Python without torch or
scipy (Blender's own), from this checkout and from the wheel that build_addon.py packs into the add-on."""
import io
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs first in each child: any import of torch or scipy fails, as in a Python that has neither.
WITHOUT_TORCH = textwrap.dedent('''
    import importlib.abc
    import sys

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("torch", "scipy"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Absent())
''')

CORE_CHECKS = textwrap.dedent('''
    import importlib.util
    import sys
    import tempfile
    from pathlib import Path

    import numpy as np

    import e3d2_core
    from e3d2_core import rotations, skeleton
    from e3d2_core.motion import Motion, resample_positions
    from e3d2_core.retarget import bonemap, footlock, loop, transfer  # the add-on's retargeting

    try:
        import e3d2_core.generation  # needs torch: proves the block works
    except ImportError:
        pass
    else:
        raise AssertionError("torch was importable")

    rng = np.random.default_rng(0)
    motion = Motion(rng.normal(0, 0.4, (40, 24, 3)), rng.normal(0, 0.1, (40, 3)), 30.0, {"seed": 7})
    path = Path(tempfile.mkdtemp()) / "dance.npz"
    motion.save(path)
    back = Motion.load(path)
    assert np.array_equal(back.poses, motion.poses) and back.meta == {"seed": 7} and back.fps == 30.0
    assert back.resample(60.0).num_frames == 79 and back.joints().shape == (40, 24, 3)
    assert resample_positions(back.joints(), 30.0, 60.0).shape == (79, 24, 3)
    quats = rotations.axis_angle_to_quaternion(motion.poses)
    assert np.allclose(rotations.quaternion_to_axis_angle(quats), motion.poses, atol=1e-6)
    assert np.allclose(skeleton.default_skeleton().rest_joints(), skeleton.forward_kinematics(
        np.zeros((24, 3)), np.zeros(3)))
    footlock.lock_feet(back.poses, back.trans, back.fps)
    for name in ("keyframes", "armature"):   # the add-on's pure modules, as Blender's Python runs them
        spec = importlib.util.spec_from_file_location(f"addon_{name}", Path(ADDON) / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    assert "torch" not in sys.modules and "scipy" not in sys.modules
    print("CORE", e3d2_core.__file__)
''')


def _run_without_torch(prelude: str, cwd: Path) -> str:
    run = subprocess.run([sys.executable, "-c", WITHOUT_TORCH + prelude + CORE_CHECKS], capture_output=True,
                         text=True, timeout=120, cwd=cwd)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return next(line for line in run.stdout.splitlines() if line.startswith("CORE"))


def test_core_bottom_layer_imports_and_works_without_torch_or_scipy(tmp_path):
    core = _run_without_torch(f"ADDON = {str(ROOT / 'blender_addon')!r}\n", tmp_path)
    assert str(ROOT / "e3d2_core") in core


def test_addon_zip_carries_the_torch_free_core(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        import build_addon
    finally:
        sys.path.remove(str(ROOT))
    zip_path = build_addon.build(tmp_path / "dist")
    with zipfile.ZipFile(zip_path) as zf:
        wheel = next(n for n in zf.namelist() if n.startswith("wheels/") and n.endswith(".whl"))
        zf.extractall(tmp_path / "addon", members=[n for n in zf.namelist() if n.endswith(".py")])
        with zipfile.ZipFile(io.BytesIO(zf.read(wheel))) as wf:
            names = set(wf.namelist())
            wf.extractall(tmp_path / "site")
    needed = {f"e3d2_core/{m}.py" for m in ("__init__", "errors", "paths", "fileio", "rotations", "skeleton",
                                             "motion", "retarget/kinematics")}
    assert needed | {"e3d2_core/assets/smpl_skeleton.json"} <= names
    # the wheel's e3d2_core, not this checkout's, in a Python without torch or scipy
    prelude = f"sys.path.insert(0, {str(tmp_path / 'site')!r})\nADDON = {str(tmp_path / 'addon')!r}\n"
    core = _run_without_torch(prelude, tmp_path)
    assert str(tmp_path / "site") in core
