"""build_addon.py's zip installs as an extension into the bpy module's user extensions and works there."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

INSTALL_AND_RUN = r'''
import sys
import bpy
zip_path, song = sys.argv[1], sys.argv[2]
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                               enable_on_install=True) == {"FINISHED"}
assert hasattr(bpy.types.Scene, "e3d2"), "the add-on did not register"
import e3d2_core
print("CORE", e3d2_core.__file__)
backend = sys.modules["bl_ext.user_default.e3d2.backend"]
sys.path.append(sys.argv[3])
from addon_support import procedural_generate
backend.use_backend(backend.InProcessBackend(generate_fn=procedural_generate))
# (no factory reset here: it would also reset the preferences that enable the extension)
bpy.context.scene.e3d2.audio_path, bpy.context.scene.e3d2.length = song, 1.0
assert bpy.ops.e3d2.create_armature() == {"FINISHED"}
assert bpy.ops.e3d2.generate_dance() == {"FINISHED"}
print("ACTION", bpy.context.active_object.animation_data.action.name)
bpy.ops.extensions.package_uninstall(repo_directory=bpy.utils.user_resource("EXTENSIONS", path="user_default"),
                                     pkg_id="e3d2")
print("UNINSTALLED", not hasattr(bpy.types.Scene, "e3d2"))
'''


@pytest.mark.skipif(__import__("importlib").util.find_spec("bpy") is None, reason="needs the bpy module")
def test_built_zip_installs_registers_and_generates(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", str(tmp_path / "dist")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    zip_path = next((tmp_path / "dist").glob("e3d2-*.zip"))
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        manifest = zf.read("blender_manifest.toml").decode()
    assert {"blender_manifest.toml", "__init__.py", "operators.py", "compat.py"} <= set(names)
    wheel = next(n for n in names if n.startswith("wheels/") and n.endswith(".whl"))
    assert f'wheels = ["./{wheel}"]' in manifest and 'id = "e3d2"' in manifest
    assert "character.py" in names
    with zipfile.ZipFile(zip_path) as zf, zipfile.ZipFile(__import__("io").BytesIO(zf.read(wheel))) as wf:
        presets = {n for n in wf.namelist() if n.startswith("e3d2_core/retarget/presets/")}
    assert {f"e3d2_core/retarget/presets/{p}.json" for p in ("mixamo", "rigify", "ue5", "vrm")} <= presets
    (tmp_path / "script.py").write_text(INSTALL_AND_RUN)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender_user")  # a fresh Blender user folder
    song = ROOT / "assets" / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"
    run = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(zip_path), str(song), str(TESTS)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    # e3d2_core came from the extension's wheel, not from this checkout
    core = next(l for l in run.stdout.splitlines() if l.startswith("CORE"))
    assert str(tmp_path / "blender_user") in core and str(ROOT) not in core
    assert "ACTION dance_Kevin_MacLeod_Vibe_Ace_hq_0" in run.stdout and "UNINSTALLED True" in run.stdout
