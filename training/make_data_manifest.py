"""Write ``training/data_manifest.json`` from a reference copy of the training data (maintainers only).

    python training/make_data_manifest.py REFERENCE_DIR [--copy-sidecars]

The table below says where every file of the data folder comes from; this script adds each file's size and
SHA-256 from REFERENCE_DIR (a folder that ``training/fetch_data.py --verify-only`` is meant to accept) and fails
if the reference lacks a file the table names or holds a data file the table does not place. ``--copy-sidecars``
also copies the files written for this data set (READMEs, sidecar ``.txt`` files, the Freedoom tools) into
``training/data_sidecars/``, which ``fetch_data.py`` installs from.

Kinds of file (``kind`` in the manifest):
* ``download``: fetched byte for byte from its project's own host or repository (pinned commit);
* ``archive``: taken byte for byte out of a published archive (a Debian package; then a zip or WAD inside it,
  or gunzipped), whose own SHA-256 is pinned too;
* ``bundled``: written for this data set, or not published anywhere as such: shipped in this repository;
* ``rebuilt``: made from fetched files by a documented tool (the Freedoom renders).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3d2_core.fileio import atomic_open  # noqa: E402
from training.data_extract import ogg_sha256_ignoring_serials  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MANIFEST = HERE / "data_manifest.json"
SIDECARS = HERE / "data_sidecars"

# Debian 12 (bookworm) main; the .deb sha256 and size are those of the archive's Packages index.
DEBIAN = "https://deb.debian.org/debian/"
SNAPSHOT = "https://snapshot.debian.org/archive/debian/20250520T000000Z/"
DEBS = {
    "sonic-pi-samples": ("3.2.2~repack-8", "pool/main/s/sonic-pi/sonic-pi-samples_3.2.2~repack-8_all.deb",
                         21882696, "25f2312d2fae005e6ad0f4726b8ed3084e776006a5a132083506e960224ac79d"),
    "ufoai-music": ("2.5-2", "pool/main/u/ufoai-music/ufoai-music_2.5-2_all.deb",
                    210239176, "2465d55e9dce75a3a2a1ad1c8ca67da84e251c04e0965d63a8562b2d9f76f9e6"),
    "openclonk-data": ("8.1-3", "pool/main/o/openclonk/openclonk-data_8.1-3_all.deb",
                       112454184, "1505314b47196c5052caf75e870ea2cf36bdb4e1d0c7e3f133da93815b7e642f"),
    "freedoom": ("0.12.1-2", "pool/main/f/freedoom/freedoom_0.12.1-2_all.deb",
                 15806800, "c5b7cf1aa6dde8c980271981ce75b9b4a9e7b634b9db93d471f54bab7a8e1290"),
    "fluid-soundfont-gm": ("3.1-5.3", "pool/main/f/fluid-soundfont/fluid-soundfont-gm_3.1-5.3_all.deb",
                           119610208, "6f531493ac4e4d9772fd96b2488ea1790af81c196135fbdd25997da0781fc60e"),
}

# GitHub repositories, pinned to the commit whose files match byte for byte
LIBROSA_DATA = ("librosa/data", "450cdd8a002c98e7bdbfebb309fc1ed024001f77")
SALSA = ("beemsoft/webxr-handtracking-playground", "44c562577de716cee6ddef73dbf261771d748e89")
MODERN = ("DragonForgedTheArtist/IClone-CMU-Mocap", "79529f962ade3274163af53cd92179cee2ed9407")
BREAK = ("keijiro/CMUMocap", "058b22af21e299ca9c5869f57bfb65bd2cc596be")

CMU_TERMS = ('CMU Graphics Lab Motion Capture Database terms: "This dataset of motions is free for all uses." '
             '"You may include this data in commercially-sold products, but you may not resell this data directly, '
             'even in converted form." Acknowledge: "The data used in this project was obtained from '
             'mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217."')

GROUPS = {
    "music": {
        "folder": "music",
        "what": "5 real songs (61.5 s to 133 s, one 5.3 s trumpet loop) with their source/licence .txt",
        "origin": "the librosa example-data registry: librosa.org/data/audio (the host librosa.example() uses), "
                  f"mirrored by the GitHub repository {LIBROSA_DATA[0]} at {LIBROSA_DATA[1][:7]}",
        "licence": "CC BY 3.0 (Kevin MacLeod; Karissa Hobbs; Mihai Sorohan) and public domain (Brahms, Hungarian "
                   "Dance no. 5, US Army Strings via Musopen); each .txt names its source and licence",
    },
    "loops": {
        "folder": "loops",
        "what": "17 drum and music loops (FLAC, 44.1 kHz stereo, 0.9-10.7 s) and the package's copyright file",
        "origin": "Debian package sonic-pi-samples 3.2.2~repack-8 (bookworm), usr/share/sonic-pi/samples/",
        "licence": "CC0 per file, else MIT (Samuel Aaron) where COPYRIGHT.sonic-pi-samples lists no file stanza",
    },
    "cmu_salsa": {
        "folder": "mocap/cmu_salsa",
        "what": "28 BVH files, CMU subjects 60 (lead) and 61 (follow), salsa trials 01-07 and 09-15, "
                "in metres; captured at 60 fps although the files say 120",
        "origin": f"GitHub {SALSA[0]} at {SALSA[1][:7]}, public/shared/bvh/60/ and 61/ (its author's scaled "
                  "conversion of CMU's motion; CMU itself publishes ASF/AMC, not these BVH files)",
        "licence": CMU_TERMS,
    },
    "cmu_modern": {
        "folder": "mocap/cmu_modern",
        "what": "19 BVH files, CMU subject 05 modern dance, trials 02-20 (150 s, 60 fps, iClone 100-joint rig), "
                "plus README.md and trials.csv",
        "origin": f"GitHub {MODERN[0]} at {MODERN[1][:7]}, All_BVH/subjects/005/ (the README and trials.csv "
                  "were written for this data set and ship in this repository)",
        "licence": CMU_TERMS,
    },
    "cmu_breakdance": {
        "folder": "mocap/cmu_breakdance",
        "what": "4 FBX clips, CMU subject 85 breaking (101 s, 30 fps, 22-bone Neo_* rig), the repository's "
                "LICENSE and a README",
        "origin": f"GitHub {BREAK[0]} at {BREAK[1][:7]}, Animation/ (the README ships in this repository)",
        "licence": 'keijiro/CMUMocap LICENSE: "basically free to use for commercial and non-commercial purposes. '
                   'Please see the CMU page" -- i.e. ' + CMU_TERMS,
    },
    "aistpp_joints": {
        "folder": "aistpp_joints",
        "what": "5 five-second slices (150 x 72 CSV, 24 SMPL joints, 30 fps, Z up) of AIST++ test-split dances",
        "origin": "this repository (tests/data/aistpp): the slices were cut from AIST++ by a third party and are "
                  "published nowhere as such, so no upstream file matches them byte for byte",
        "licence": 'AIST++ annotations, CC BY 4.0, Google (Li et al., "AI Choreographer", ICCV 2021)',
    },
    "ufoai": {
        "folder": "music_library/ufoai",
        "what": "16 tracks (60 min, Ogg Vorbis 44.1 kHz stereo, unchanged) of the UFO: Alien Invasion score, "
                "their .txt sidecars and the package's copyright file",
        "origin": "Debian package ufoai-music 2.5-2 (bookworm), members music/*.ogg of "
                  "usr/share/games/ufoai/base/0music.pk3 (a zip)",
        "licence": "13 x CC BY 3.0, 3 x public domain, per the package's copyright file (COPYRIGHT.ufoai-music)",
    },
    "openclonk": {
        "folder": "music_library/openclonk",
        "what": "7 tracks (23 min, Ogg Vorbis, unchanged) by Martin Strohmeier (K-Pone), sidecars, the music "
                "folder's authors.txt and the package's copyright file",
        "origin": "Debian package openclonk-data 8.1-3 (bookworm), usr/share/games/openclonk/Music.ocg/",
        "licence": "CC BY 3.0 (see music_library/README.md for the wording of the package's notice)",
    },
    "freedoom": {
        "folder": "music_library/freedoom",
        "what": "67 MIDI files (the WAD music lumps, unchanged), 20 of them rendered to 22 kHz mono Ogg Vorbis "
                "with exact quarter-note times (.beats.txt), sidecars, copyright/credits, and the tools",
        "origin": "Debian packages freedoom 0.12.1-2 (the lumps of usr/share/games/doom/freedoom{1,2}.wad) and "
                  "fluid-soundfont-gm 3.1-5.3 (FluidR3_GM.sf2, for the renders)",
        "licence": "BSD-3-Clause (freedoom-license, COPYRIGHT.freedoom, CREDITS.freedoom); soundfont MIT",
    },
}

RENDER_TOOL = "music_library/freedoom/make_freedoom_music.py"
RENDERED = ["D_E1M5", "D_DDTBL3", "D_E1M7", "D_E3M9", "D_DOOM", "D_RUNNI2", "D_TENSE", "D_E2M9", "D_BUNNY",
            "D_AMPIE", "D_E2M1", "D_E3M3", "D_DOOM2", "D_E1M2", "D_EVIL", "D_E3M2", "D_THEDA2", "D_E2M7", "D_E2M8",
            "D_E1M1"]
# files in the reference that are no part of the data set (its top-level README addresses this team)
IGNORED = {"README.md"}


def github_raw(repo_commit, path: str) -> str:
    repo, commit = repo_commit
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{quote(path, safe='/()~')}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archives() -> dict:
    return {name: {"file": pool.rsplit("/", 1)[1], "package": f"{name} {version} (Debian 12 bookworm, main)",
                   "urls": [DEBIAN + pool, SNAPSHOT + pool], "size": size, "sha256": sha}
            for name, (version, pool, size, sha) in DEBS.items()}


def sources(ref: Path) -> list[dict]:
    """One dict per file: path, group and how to obtain it (no hashes yet)."""
    out: list[dict] = []

    def add(path, group, **how):
        out.append({"path": path, "group": group, **how})

    for p in sorted((ref / "music").iterdir()):
        add(f"music/{p.name}", "music", kind="download",
            urls=[f"https://librosa.org/data/audio/{quote(p.name, safe='()~')}",
                  github_raw(LIBROSA_DATA, f"audio/{p.name}")])
    for p in sorted((ref / "loops").glob("loop_*.flac")):
        add(f"loops/{p.name}", "loops", kind="archive", archive="sonic-pi-samples",
            extract=[{"deb": f"usr/share/sonic-pi/samples/{p.name}"}])
    add("loops/COPYRIGHT.sonic-pi-samples", "loops", kind="archive", archive="sonic-pi-samples",
        extract=[{"deb": "usr/share/doc/sonic-pi-samples/copyright"}])
    for p in sorted((ref / "mocap/cmu_salsa").glob("*.bvh")):
        add(f"mocap/cmu_salsa/{p.name}", "cmu_salsa", kind="download",
            urls=[github_raw(SALSA, f"public/shared/bvh/{p.name[:2]}/{p.name}")])
    for p in sorted((ref / "mocap/cmu_modern").glob("*.bvh")):
        add(f"mocap/cmu_modern/{p.name}", "cmu_modern", kind="download",
            urls=[github_raw(MODERN, f"All_BVH/subjects/005/{p.name}")])
    for name in ("README.md", "trials.csv"):
        add(f"mocap/cmu_modern/{name}", "cmu_modern", kind="bundled",
            repo_path=f"training/data_sidecars/mocap/cmu_modern/{name}")
    for p in sorted((ref / "mocap/cmu_breakdance").glob("*.fbx")):
        add(f"mocap/cmu_breakdance/{p.name}", "cmu_breakdance", kind="download",
            urls=[github_raw(BREAK, f"Animation/{p.name}")])
    add("mocap/cmu_breakdance/LICENSE.keijiro-CMUMocap", "cmu_breakdance", kind="download",
        urls=[github_raw(BREAK, "LICENSE")])
    add("mocap/cmu_breakdance/README.md", "cmu_breakdance", kind="bundled",
        repo_path="training/data_sidecars/mocap/cmu_breakdance/README.md")
    for p in sorted((ref / "aistpp_joints").glob("*.csv")):
        add(f"aistpp_joints/{p.name}", "aistpp_joints", kind="bundled", repo_path=f"tests/data/aistpp/{p.name}")

    add("music_library/README.md", "ufoai", also=["openclonk", "freedoom"], kind="bundled",
        repo_path="training/data_sidecars/music_library/README.md")
    lib = ref / "music_library"
    for p in sorted((lib / "ufoai").glob("*.ogg")):
        add(f"music_library/ufoai/{p.name}", "ufoai", kind="archive", archive="ufoai-music",
            extract=[{"deb": "usr/share/games/ufoai/base/0music.pk3"}, {"zip": f"music/{p.name}"}])
    add("music_library/ufoai/COPYRIGHT.ufoai-music", "ufoai", kind="archive", archive="ufoai-music",
        extract=[{"deb": "usr/share/doc/ufoai-music/copyright"}])
    music_ocg = "usr/share/games/openclonk/Music.ocg/"
    for p in sorted((lib / "openclonk").glob("*.ogg")):
        member = "@CrushedIceCocktail.ogg" if p.name == "CrushedIceCocktail.ogg" else p.name
        add(f"music_library/openclonk/{p.name}", "openclonk", kind="archive", archive="openclonk-data",
            extract=[{"deb": music_ocg + member}])
    add("music_library/openclonk/Music.ocg-authors.txt", "openclonk", kind="archive", archive="openclonk-data",
        extract=[{"deb": music_ocg + "authors.txt"}])
    add("music_library/openclonk/COPYRIGHT.openclonk-data", "openclonk", kind="archive", archive="openclonk-data",
        extract=[{"deb": "usr/share/doc/openclonk-data/copyright"}])
    fd = lib / "freedoom"
    wad_of = _wad_index(fd)
    for p in sorted(fd.glob("*.mid")):
        add(f"music_library/freedoom/{p.name}", "freedoom", kind="archive", archive="freedoom",
            extract=[{"deb": f"usr/share/games/doom/{wad_of[p.stem]}"}, {"wad": p.stem}])
    add("music_library/freedoom/COPYRIGHT.freedoom", "freedoom", kind="archive", archive="freedoom",
        extract=[{"deb": "usr/share/doc/freedoom/copyright"}])
    add("music_library/freedoom/CREDITS.freedoom", "freedoom", kind="archive", archive="freedoom",
        extract=[{"deb": "usr/share/doc/freedoom/CREDITS.gz"}, {"gunzip": True}])
    add("music_library/freedoom/COPYRIGHT.fluid-soundfont-gm", "freedoom", kind="archive",
        archive="fluid-soundfont-gm", extract=[{"deb": "usr/share/doc/fluid-soundfont-gm/copyright"}])
    for name in RENDERED:
        for suffix in (".ogg", ".beats.txt"):
            add(f"music_library/freedoom/{name}{suffix}", "freedoom", kind="rebuilt", tool=RENDER_TOOL)
    # everything else in the library was written for this data set: sidecars, READMEs, tools, the beat check
    placed = {e["path"] for e in out}
    for group in ("ufoai", "openclonk", "freedoom"):
        for p in sorted((lib / group).iterdir()):
            rel = f"music_library/{group}/{p.name}"
            if rel not in placed:
                add(rel, group, kind="bundled", repo_path=f"training/data_sidecars/{rel}")
    return out


def _wad_index(folder: Path) -> dict:
    """Which Freedoom WAD each music lump is taken from, as its sidecar ``.txt`` in ``folder`` says."""
    names = {}
    for p in sorted(folder.glob("*.txt")):
        for line in p.read_text().splitlines():
            if line.startswith("source package: freedoom") and "freedoom1.wad" in line:
                names[p.name.split(".")[0]] = "freedoom1.wad"
            elif line.startswith("source package: freedoom") and "freedoom2.wad" in line:
                names[p.name.split(".")[0]] = "freedoom2.wad"
    return names


def build(ref: Path) -> dict:
    files = sources(ref)
    listed = {e["path"] for e in files}
    on_disk = {p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file()} - IGNORED
    if on_disk - listed:
        raise SystemExit("make_data_manifest: no source for " + ", ".join(sorted(on_disk - listed)))
    for e in files:
        p = ref / e["path"]
        if not p.is_file():
            raise SystemExit(f"make_data_manifest: the reference lacks {e['path']}")
        e["size"] = p.stat().st_size
        e["sha256"] = sha256_of(p)
        if e["kind"] == "rebuilt" and p.suffix == ".ogg":
            e["sha256_ignoring_ogg_serials"] = ogg_sha256_ignoring_serials(p)
    return {
        "format": 1,
        "about": "Every file of the e3d2 training-data folder: where it comes from, its size and SHA-256. "
                 "Read by training/fetch_data.py; written by training/make_data_manifest.py.",
        "kinds": {
            "download": "fetched byte for byte from the first URL that answers",
            "archive": "taken byte for byte out of a pinned archive: 'deb' member of the package's data.tar, "
                       "then optionally a 'zip' member, a 'wad' lump, or 'gunzip'",
            "bundled": "written for this data set or published nowhere as such: copied from this repository "
                       "(repo_path)",
            "rebuilt": "made from fetched files by the tool named; the .ogg renders match the reference up to "
                       "the Ogg stream serial numbers (sha256_ignoring_ogg_serials), the .beats.txt byte for byte",
        },
        "rebuild": {
            RENDER_TOOL: {
                "command": "python make_freedoom_music.py FREEDOOM_ROOT FluidR3_GM.sf2 OUTDIR (FFMPEG=ffmpeg)",
                "inputs": [{"archive": "freedoom", "member": "usr/share/games/doom/freedoom1.wad"},
                           {"archive": "freedoom", "member": "usr/share/games/doom/freedoom2.wad"},
                           {"archive": "fluid-soundfont-gm", "member": "usr/share/sounds/sf2/FluidR3_GM.sf2"}],
                "needs": "the fluidsynth program (the reference was rendered with fluidsynth 2.3.1, Debian 12's; "
                         "apt-get install fluidsynth), an ffmpeg with libvorbis ($FFMPEG, else imageio-ffmpeg's), "
                         "numpy and soundfile",
            },
        },
        "archives": archives(),
        "groups": GROUPS,
        "files": files,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path, help="a complete, correct data folder")
    parser.add_argument("--copy-sidecars", action="store_true",
                        help="copy the files written for this data set into training/data_sidecars/")
    args = parser.parse_args(argv)
    manifest = build(args.reference)
    if args.copy_sidecars:
        for e in manifest["files"]:
            if e["kind"] == "bundled" and e["repo_path"].startswith("training/data_sidecars/"):
                target = REPO / e["repo_path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(args.reference / e["path"], target)
    with atomic_open(MANIFEST, "w") as handle:
        json.dump(manifest, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    kinds = {}
    for e in manifest["files"]:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    print(f"wrote {MANIFEST.relative_to(REPO)}: {len(manifest['files'])} files ({kinds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
