"""Headless e3d2: songs in, dancing FBX files out. Synchronous, prints progress, exit code != 0 on failure.

    blender -b --python blender_addon/headless.py -- --audio song.ogg --out dance.fbx [--blend out.blend]
                                                      [--seed N] [--takes K] [--seconds S] [--fps F]
                                                      [--temperature T] [--motion dance.npz] [--pack-audio]
                                                      [--reduce-keys [--max-error-deg D] [--max-error-cm C]]
                                                      [--target rig.blend|rig.fbx [--rig auto|mixamo|rigify|ue5|vrm]
                                                       [--bone-map map.json]] [--foot-lock]
    python blender_addon/headless.py -- ...            # the same with the bpy module

``--audio`` may be a folder: one FBX per song in the ``--out`` folder (and one .blend per song in ``--blend``,
if given), and a summary at the end. The model runs in this Python when torch imports here, otherwise (or with
``--backend-python``) in ``python -m e3d2_core.serve`` under that interpreter. ``--motion`` keys a Motion saved
by ``e3d2 generate`` instead of generating (one song). The .blend's sound strip points at the song by its
absolute path (the .blend can move); ``--pack-audio`` packs the song into the .blend instead.
``--target`` dances on your own character instead of an SMPL armature: its armature (the one with the most bones)
is read from a .blend or imported from an FBX into each scene, its bones are mapped by ``--rig`` (a preset, or
``auto`` detection) or by a ``--bone-map`` file, and the FBX written is that character with its new action.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

AUDIO_SUFFIXES = {".ogg", ".wav", ".mp3", ".flac", ".m4a", ".aac", ".opus"}
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv):
    argv = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="headless.py", description="Generate dances as FBX without a UI.")
    parser.add_argument("--audio", required=True, help="a song file, or a folder of songs")
    parser.add_argument("--out", required=True, help="the FBX file (a folder when --audio is a folder)")
    parser.add_argument("--blend", help="also save the scene (.blend; a folder when --audio is a folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--takes", type=int, default=1, help="dances per song (the first is exported)")
    parser.add_argument("--seconds", type=float, default=0.0, help="dance length; 0 = the whole song")
    parser.add_argument("--fps", type=float, default=30.0, help="scene frame rate")
    parser.add_argument("--preset", choices=("BLENDER", "UNITY", "UNREAL"), default="BLENDER")
    parser.add_argument("--temperature", type=float,
                        help="sampling temperature (default: the panel's Temperature); 0 = greedy, which makes a "
                             "small model stand still")
    parser.add_argument("--beat-lock", type=float, metavar="S",
                        help="0-1: move the dance's steps onto the music's beats (default: the panel's Beat Lock; "
                             "0 = the model's timing)")
    parser.add_argument("--beat-guide", type=float, metavar="G",
                        help="≥ 0: pick moves that are slow on the beat, quick between beats (default: the panel's "
                             "Beat Guide; 0 = the model's own choices)")
    parser.add_argument("--in-place", action="store_true")
    parser.add_argument("--backend-python", default="", help="run the model in this interpreter")
    parser.add_argument("--checkpoint", default="", help="model bundle (default: the bundled one)")
    parser.add_argument("--motion", default="", help="key this saved Motion (.npz from e3d2 generate) instead "
                                                     "of generating (one song; its seed names the action)")
    parser.add_argument("--pack-audio", action="store_true", help="pack the song into the .blend")
    parser.add_argument("--reduce-keys", action="store_true",
                        help="keep only the keys needed within --max-error-deg/--max-error-cm (else every frame)")
    parser.add_argument("--max-error-deg", type=float, default=0.5,
                        help="key reduction: largest bone rotation error, degrees (default 0.5)")
    parser.add_argument("--max-error-cm", type=float, default=0.5,
                        help="key reduction: largest root position error, cm (default 0.5)")
    parser.add_argument("--target", default="", help="dance on this character: a .blend or .fbx with its armature")
    parser.add_argument("--rig", default="auto", choices=RIG_CHOICES,
                        help="the character's bone-map preset (default auto: detected from its bone names)")
    parser.add_argument("--bone-map", default="", help="a bone-map JSON file (Save Map in the add-on) for --target")
    parser.add_argument("--foot-lock", action="store_true",
                        help="pin each foot while it stands (two-bone leg IK), never below the floor")
    return parser.parse_args(argv)


RIG_CHOICES = ("auto", "mixamo", "rigify", "rigify_def", "ue5", "ue4", "vrm", "smpl", "smplx", "generic")


def ensure_addon():
    """Register the add-on from this checkout unless Blender already has it enabled.

    Returns ``(module, registered_here)``: what this script registered it unregisters before exiting (the bpy
    4.2 module crashes at interpreter exit with the add-on's classes still registered).
    """
    import bpy

    if hasattr(bpy.types.Scene, "e3d2"):
        return sys.modules[next(n for n in sys.modules if n.endswith("blender_addon") or n.endswith(".e3d2"))], False
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import blender_addon

    blender_addon.register()
    return blender_addon, True


def dance_one(song: Path, fbx: Path, blend: Path | None, args) -> str:
    """Make one song's dance; returns a one-line summary or raises RuntimeError with the reason."""
    import bpy

    from blender_addon.motion_files import load_motion_arrays
    from blender_addon.properties import preferences
    from e3d2_core.errors import E3D2Error

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = _fps_pair(args.fps)
    settings = scene.e3d2
    settings.seed, settings.takes, settings.length, settings.in_place = args.seed, args.takes, args.seconds, args.in_place
    for name in ("temperature", "beat_lock", "beat_guide"):      # unset: the panel's defaults, the core's
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    settings.reduce_keys = args.reduce_keys
    settings.key_error_degrees, settings.key_error_cm = args.max_error_deg, args.max_error_cm
    if args.motion:  # the saved dance's own seed names its action
        try:
            settings.seed = int(load_motion_arrays(args.motion)["meta"].get("seed", args.seed))
        except E3D2Error as err:  # a broken file: this song's one-line failure
            raise RuntimeError(str(err)) from None
    prefs = preferences()
    if args.backend_python:
        prefs.backend_mode, prefs.python_path = "SUBPROCESS", args.backend_python
    prefs.checkpoint = args.checkpoint
    # The operator adds the song's sound strip at the first frame and sets the scene's range to the dance.
    settings.audio_path = str(song)
    scene.e3d2_character.foot_lock = args.foot_lock
    if args.target:
        character = load_character(Path(args.target), args)
    else:
        bpy.ops.e3d2.create_armature()
    bpy.ops.e3d2.generate_dance(motion=args.motion)
    action = bpy.context.active_object.animation_data.action
    bpy.ops.e3d2.export_fbx(filepath=str(fbx), preset=args.preset)
    if blend is not None:
        blend.parent.mkdir(parents=True, exist_ok=True)
        if args.pack_audio:
            for sound in bpy.data.sounds:
                sound.pack()
        # relative_remap=False: the song keeps its absolute path, so the .blend can be moved
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), relative_remap=False)
    keys = f", {action['e3d2_keys']} keys" if "e3d2_keys" in action else ""
    on = f" on {character.name} ({scene.e3d2_character.map_rig})" if args.target else ""
    return f"{song.name}: {action.name}{on}, frames {scene.frame_start}-{scene.frame_end}{keys} -> {fbx}"


def load_character(path: Path, args):
    """Bring the character into the scene (appended from a .blend, or imported from an FBX), make it the
    target with its bone map, and select it; RuntimeError with the reason when it cannot dance."""
    import bpy

    from blender_addon import character
    from e3d2_core.errors import E3D2Error
    from e3d2_core.retarget import bonemap

    before = set(bpy.data.objects)
    if path.suffix.lower() == ".blend":
        with bpy.data.libraries.load(str(path), link=False) as (source, into):
            into.objects = list(source.objects)
        for obj in into.objects:
            if obj is not None:
                bpy.context.scene.collection.objects.link(obj)
    elif path.suffix.lower() == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        raise RuntimeError(f"{path}: a character is a .blend or .fbx file")
    armatures = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
    if not armatures:
        raise RuntimeError(f"{path}: no armature in it")
    obj = max(armatures, key=lambda o: len(o.data.bones))
    settings = bpy.context.scene.e3d2_character
    settings.rig = args.rig
    settings.target = obj
    try:
        if args.bone_map:
            loaded = bonemap.load_bone_map(args.bone_map, [b.name for b in obj.data.bones], armature=f"'{obj.name}'")
            character.fill_slots(settings, loaded, loaded.rig)
        character.character_map(bpy.context, obj)
    except E3D2Error as err:
        raise RuntimeError(str(err)) from None
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    return obj


def _fps_pair(fps: float) -> tuple[int, float]:
    """Blender's (fps, fps_base) for a rate: 29.97 -> (30, 1.001)."""
    whole = round(fps)
    return (whole, 1.0) if abs(fps - whole) < 1e-6 else (whole, whole / fps)


def main(argv=None) -> int:
    args = parse_args(sys.argv if argv is None else argv)
    # absolute paths: Blender resolves relative ones against the (unsaved) .blend, not the shell's folder
    audio, out = Path(args.audio).resolve(), Path(args.out).resolve()
    args.blend = str(Path(args.blend).resolve()) if args.blend else args.blend
    if args.beat_lock is not None and not 0.0 <= args.beat_lock <= 1.0:
        print(f"e3d2 headless: error: --beat-lock must be from 0 to 1, got {args.beat_lock:g}", file=sys.stderr)
        return 2
    if args.beat_guide is not None and not args.beat_guide >= 0.0:
        print(f"e3d2 headless: error: --beat-guide must be ≥ 0, got {args.beat_guide:g}", file=sys.stderr)
        return 2
    if args.target:
        if not Path(args.target).is_file():
            print(f"e3d2 headless: error: {args.target}: no such character file", file=sys.stderr)
            return 2
        args.target = str(Path(args.target).resolve())
    if args.bone_map and not args.target:
        print("e3d2 headless: error: --bone-map maps the bones of a --target character", file=sys.stderr)
        return 2
    if args.motion:
        if not Path(args.motion).is_file():
            print(f"e3d2 headless: error: {args.motion}: no such motion file", file=sys.stderr)
            return 2
        if audio.is_dir() or args.takes != 1:
            print("e3d2 headless: error: --motion keys one saved dance: give one song file and no --takes",
                  file=sys.stderr)
            return 2
        args.motion = str(Path(args.motion).resolve())
    if audio.is_dir():
        songs = sorted(p for p in audio.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not songs:
            print(f"e3d2 headless: error: no songs in {audio}", file=sys.stderr)
            return 2
        jobs = [(s, out / f"{s.stem}.fbx", Path(args.blend) / f"{s.stem}.blend" if args.blend else None)
                for s in songs]
    elif audio.is_file():
        jobs = [(audio, out, Path(args.blend) if args.blend else None)]
    else:
        print(f"e3d2 headless: error: {audio}: no such song file or folder", file=sys.stderr)
        return 2
    try:
        addon, registered_here = ensure_addon()
    except Exception as err:  # bpy missing or the add-on broken: one line, not a traceback
        print(f"e3d2 headless: error: cannot load the add-on ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    done, failed = [], []
    try:
        for song, fbx, blend in jobs:
            started = time.monotonic()
            print(f"e3d2 headless: {song.name} ...", flush=True)
            try:
                line = dance_one(song, fbx, blend, args)
                done.append(f"{line} ({time.monotonic() - started:.1f} s)")
                print(f"e3d2 headless: {done[-1]}", flush=True)
            except RuntimeError as err:  # operator reports arrive as RuntimeError("Error: ...")
                reason = str(err).strip().splitlines()[-1].removeprefix("Error: ")
                failed.append(f"{song.name}: {reason}")
                print(f"e3d2 headless: error: {failed[-1]}", file=sys.stderr, flush=True)
    finally:
        if registered_here:
            addon.unregister()
    if len(jobs) > 1:
        print(f"e3d2 headless: {len(done)} of {len(jobs)} songs done" + (f", {len(failed)} failed:" if failed else ""))
        for line in failed:
            print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    code = main()
    if "bpy" in sys.modules and sys.modules["bpy"].app.background:
        sys.stdout.flush()
    sys.exit(code)
