"""Build the installable Blender extension: ``python build_addon.py`` -> ``dist/e3d2-<version>.zip``.

The zip holds the add-on (``blender_addon/``) with its ``blender_manifest.toml`` and, as the manifest's wheel,
``e3d2_core`` with the assets it needs at run time (skeleton, default checkpoint when present). Blender installs
the wheel into its extension site-packages on enable; torch and the other heavy requirements are not bundled
(in-process when Blender's Python has them, else the backend interpreter from "Set up backend").
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RUNTIME_ASSETS = ("smpl_skeleton.json", "e3d2_default.pt", "ATTRIBUTION.md")


def _version() -> str:
    text = (ROOT / "e3d2_core" / "__init__.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(out_dir: Path, version: str) -> tuple[Path, list[str]]:
    """A pure-Python wheel of e3d2_core with ``e3d2_core/assets/`` (what ``paths.assets_dir`` looks for)."""
    files: dict[str, bytes] = {}
    data_files = (ROOT / "e3d2_core" / "retarget" / "presets").glob("*.json")   # the bone-map presets
    for path in sorted([*(ROOT / "e3d2_core").rglob("*.py"), *data_files]):
        files[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    bundled = []
    for name in RUNTIME_ASSETS:
        asset = ROOT / "assets" / name
        if asset.is_file():
            files[f"e3d2_core/assets/{name}"] = asset.read_bytes()
            bundled.append(name)
    dist = f"e3d2-{version}.dist-info"
    files[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: e3d2\nVersion: {version}\n"
                                 "Summary: e3d2 core (bundled with the Blender add-on)\n").encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: e3d2-build_addon\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist}/RECORD,,"]
    wheel = out_dir / f"e3d2-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel, bundled


def build(out_dir: Path = ROOT / "dist") -> Path:
    version = _version()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel, bundled = build_wheel(out_dir, version)
    manifest = (ROOT / "blender_addon" / "blender_manifest.toml").read_text()
    manifest = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', manifest)
    manifest = re.sub(r"(?m)^wheels = \[.*\]$", f'wheels = ["./wheels/{wheel.name}"]', manifest)
    target = out_dir / f"e3d2-{version}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blender_manifest.toml", manifest)
        for path in sorted((ROOT / "blender_addon").glob("*.py")):
            zf.write(path, path.name)
        zf.write(wheel, f"wheels/{wheel.name}")
    tmp.replace(target)
    wheel.unlink()
    missing = [n for n in RUNTIME_ASSETS if n not in bundled]
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB; assets: {', '.join(bundled)}"
          + (f"; not found, not bundled: {', '.join(missing)}" if missing else "") + ")")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    args = parser.parse_args(argv)
    build(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
