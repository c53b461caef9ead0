"""training/fetch_data.py against a fake upstream served from a temp folder on localhost (no internet here).

The fake upstream holds a small Debian package (ar + data.tar.xz with a zip, a WAD and a gzip inside), plain files
on two hosts, and the test manifest pins their hashes the way the real one pins the real files. The last tests
check the real manifest itself: its bundled files are in this repository, and (where the reference copy of the
data exists beside the repository) every one of its files matches.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import struct
import tarfile
import threading
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from training import data_extract, fetch_data
from training.fetch_data import Problem, load_manifest, main, verify

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("E3D2_SHARED_DATA") or ROOT.parent / "shared" / "data")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
BUNDLED = "tests/data/aistpp/true_gBR_sBM_cAll_d04_mBR0_ch02_slice0.csv"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- fake upstream

def make_wad(lumps: dict[str, bytes]) -> bytes:
    body, directory, offset = b"", b"", 12
    for name, data in lumps.items():
        directory += struct.pack("<ii8s", offset, len(data), name.encode())
        body += data
        offset += len(data)
    return struct.pack("<4sii", b"IWAD", len(lumps), offset) + body + directory


def make_deb(files: dict[str, bytes], compression: str = "xz") -> bytes:
    """A Debian binary package: ar archive of debian-binary, a control member (odd length: tests the ar padding)
    and data.tar.<compression> holding ``files``."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=f"w:{compression}") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    out = bytearray(b"!<arch>\n")
    for name, blob in (("debian-binary", b"2.0\n"), ("control.tar.xz", b"odd!!"),
                       (f"data.tar.{compression}", data.getvalue())):
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode()
        out += blob + (b"\n" if len(blob) % 2 else b"")
    return bytes(out)


def ogg_page(serial: int, seq: int, payload: bytes, header_type: int = 0) -> bytes:
    """One Ogg page (CRC left as a dummy that depends on the serial, as a real CRC does)."""
    segments = [255] * (len(payload) // 255) + [len(payload) % 255]
    crc = struct.pack("<I", (serial * 2654435761 + seq) & 0xFFFFFFFF)
    return (b"OggS" + bytes([0, header_type]) + struct.pack("<qII", 1000 * seq, serial, seq) + crc
            + bytes([len(segments)]) + bytes(segments) + payload)


@pytest.fixture
def upstream(tmp_path):
    """The fake upstream tree (``host/path``) and the manifest that describes the data folder made from it."""
    rng = __import__("random").Random(7)
    blob = lambda n: bytes(rng.randrange(256) for _ in range(n))  # noqa: E731
    song, clip, loop, ogg_in_zip = blob(3000), blob(2501), blob(777), blob(1200)
    lumps = {"D_ONE": blob(300), "D_TWO": blob(41)}
    credits = b"Credits: everybody\n" * 20
    pack = io.BytesIO()
    with zipfile.ZipFile(pack, "w") as z:
        z.writestr("music/a.ogg", ogg_in_zip)
    deb = make_deb({"usr/share/doc/pkg/copyright": b"Files: *\nLicense: CC0\n", "usr/share/pkg/loop.flac": loop,
                    "usr/share/pkg/pack.pk3": pack.getvalue(), "usr/share/games/game.wad": make_wad(lumps),
                    "usr/share/doc/pkg/CREDITS.gz": gzip.compress(credits, mtime=0)})
    mirror = tmp_path / "mirror"
    served = {"example.org/audio/song (1).ogg": song, f"raw.githubusercontent.com/o/r/{COMMIT}/clips/c.bvh": clip,
              "deb.example.org/pool/p/pkg_1.0~1_all.deb": deb}
    for rel, data in served.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
    bundled = (ROOT / BUNDLED).read_bytes()

    def entry(path, group, data, **how):
        return {"path": path, "group": group, "size": len(data), "sha256": sha(data), **how}

    deb_step = lambda member: [{"deb": member}]  # noqa: E731
    files = [
        entry("music/song (1).ogg", "music", song, kind="download",
              urls=["https://gone.example.org/audio/song%20(1).ogg", "https://example.org/audio/song%20(1).ogg"]),
        entry("mocap/clips/c.bvh", "clips", clip, kind="download",
              urls=[f"https://raw.githubusercontent.com/o/r/{COMMIT}/clips/c.bvh"]),
        entry("loops/loop.flac", "loops", loop, kind="archive", archive="pkg",
              extract=deb_step("usr/share/pkg/loop.flac")),
        entry("loops/COPYRIGHT.pkg", "loops", b"Files: *\nLicense: CC0\n", kind="archive", archive="pkg",
              extract=deb_step("usr/share/doc/pkg/copyright")),
        entry("lib/a.ogg", "lib", ogg_in_zip, kind="archive", archive="pkg",
              extract=[{"deb": "usr/share/pkg/pack.pk3"}, {"zip": "music/a.ogg"}]),
        entry("lib/D_ONE.mid", "lib", lumps["D_ONE"], kind="archive", archive="pkg",
              extract=[{"deb": "usr/share/games/game.wad"}, {"wad": "D_ONE"}]),
        entry("lib/D_TWO.mid", "lib", lumps["D_TWO"], kind="archive", archive="pkg",
              extract=[{"deb": "usr/share/games/game.wad"}, {"wad": "D_TWO"}]),
        entry("lib/CREDITS", "lib", credits, kind="archive", archive="pkg",
              extract=[{"deb": "usr/share/doc/pkg/CREDITS.gz"}, {"gunzip": True}]),
        entry("joints/slice.csv", "joints", bundled, kind="bundled", repo_path=BUNDLED),
    ]
    manifest = {
        "format": 1,
        "archives": {"pkg": {"file": "pkg_1.0~1_all.deb", "package": "pkg 1.0~1", "size": len(deb),
                             "sha256": sha(deb), "urls": ["https://deb.example.org/pool/p/pkg_1.0~1_all.deb"]}},
        "groups": {"music": {"folder": "music"}, "clips": {"folder": "mocap/clips"}, "loops": {"folder": "loops"},
                   "lib": {"folder": "lib"}, "joints": {"folder": "joints"}},
        "rebuild": {},
        "files": files,
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return {"mirror": mirror, "manifest": manifest, "manifest_path": path, "served": served}


class _Mirror(http.server.BaseHTTPRequestHandler):
    """Serves the fake upstream with HTTP range support; ``server.cut[path] = n`` drops one response after n bytes;
    ``server.replace[path] = bytes`` serves other bytes."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        self.server.requests.append((rel, self.headers.get("Range")))
        file = self.server.root / rel
        if not file.is_file():
            self.send_error(404)
            return
        data = self.server.replace.get(rel, file.read_bytes())
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = self.server.cut.pop(rel, None)
        self.wfile.write(data[start:] if cut is None else data[start:start + cut])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(upstream, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    httpd.root, httpd.requests, httpd.cut, httpd.replace = upstream["mirror"], [], {}, {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("E3D2_CACHE_DIR", str(tmp_path / "cache"))


def run(upstream, out, *extra):
    return main(["-o", str(out), "--manifest", str(upstream["manifest_path"]), *extra])


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


# ---------------------------------------------------------------------------------------------- fetch

def test_fetch_downloads_extracts_and_checks_every_file(upstream, server, tmp_path, capsys):
    out = tmp_path / "data"
    assert run(upstream, out, "--source", base(server)) == 0
    assert "all 9 files" in capsys.readouterr().out
    for entry in upstream["manifest"]["files"]:
        assert sha((out / entry["path"]).read_bytes()) == entry["sha256"], entry["path"]
    assert verify(out, manifest=upstream["manifest"]) == []
    assert not (out / fetch_data.DOWNLOADS).exists()      # archives and partial files cleaned up
    # the first URL of the song is gone upstream: the second one served it
    assert ("gone.example.org/audio/song (1).ogg", None) in server.requests


def test_second_run_is_idempotent(upstream, server, tmp_path):
    out = tmp_path / "data"
    assert run(upstream, out, "--source", base(server)) == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    server.requests.clear()
    assert run(upstream, out, "--source", base(server)) == 0
    assert server.requests == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


def test_interrupted_download_resumes_with_a_range_request(upstream, server, tmp_path, capsys):
    out = tmp_path / "data"
    deb = "deb.example.org/pool/p/pkg_1.0~1_all.deb"
    size = len(upstream["served"][deb])
    server.cut[deb] = size // 2
    assert run(upstream, out, "--source", base(server)) == 2
    err = capsys.readouterr().err
    # every file of the package is named, with the reason; the files from elsewhere arrived
    for name in ("loops/loop.flac", "loops/COPYRIGHT.pkg", "lib/a.ogg", "lib/D_ONE.mid", "lib/CREDITS"):
        assert f"network: {name}: pkg_1.0~1_all.deb:" in err
    assert "closed before the end" in err and "6 file(s) missing or altered" in err
    assert (out / "music/song (1).ogg").is_file() and not (out / "loops").exists()
    part, = (out / fetch_data.DOWNLOADS).glob("pkg_1.0~1_all.deb.*.part")
    assert part.stat().st_size == size // 2
    server.requests.clear()
    assert run(upstream, out, "--source", base(server)) == 0
    # one request for the rest of the package, nothing fetched twice
    assert [r for r in server.requests if r[0] == deb] == [(deb, f"bytes={size // 2}-")]
    assert verify(out, manifest=upstream["manifest"]) == []


def test_hash_mismatch_names_the_file_and_both_hashes(upstream, server, tmp_path, capsys):
    out = tmp_path / "data"
    rel = f"raw.githubusercontent.com/o/r/{COMMIT}/clips/c.bvh"
    server.replace[rel] = b"not the clip"
    assert run(upstream, out, "--source", base(server), "--only", "clips") == 2
    err = capsys.readouterr().err
    want = upstream["manifest"]["files"][1]["sha256"]
    line = next(l for l in err.splitlines() if l.startswith("fetch_data: failed: mocap/clips/c.bvh"))
    assert f"sha256 {sha(b'not the clip')} (12 bytes), expected {want}" in line
    assert not (out / "mocap/clips/c.bvh").exists()
    assert "  failed: mocap/clips/c.bvh" in err      # and again in the summary


def test_network_failure_is_one_line_per_file(upstream, tmp_path, capsys):
    out = tmp_path / "data"
    # a port nobody listens on
    assert run(upstream, out, "--source", "http://127.0.0.1:9/", "--only", "music,clips") == 2
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("fetch_data: network:")]
    assert [l.split(":")[2].strip() for l in lines] == ["music/song (1).ogg", "mocap/clips/c.bvh"]
    assert all("cannot connect" in l for l in lines)


def test_a_mirror_folder_works_like_a_server(upstream, tmp_path):
    out = tmp_path / "data"
    assert run(upstream, out, "--source", str(upstream["mirror"])) == 0
    assert run(upstream, tmp_path / "other", "--source", upstream["mirror"].as_uri(), "--only", "lib") == 0
    assert sorted(p.name for p in (tmp_path / "other").rglob("*") if p.is_file()) == \
        ["CREDITS", "D_ONE.mid", "D_TWO.mid", "a.ogg"]


def test_altered_file_is_replaced_and_the_old_copy_kept(upstream, server, tmp_path):
    out = tmp_path / "data"
    assert run(upstream, out, "--source", base(server)) == 0
    loop = out / "loops/loop.flac"
    loop.write_bytes(b"my edit")
    assert run(upstream, out, "--source", base(server)) == 0
    assert (out / "loops/loop.flac.altered").read_bytes() == b"my edit"
    assert sha(loop.read_bytes()) == upstream["manifest"]["files"][2]["sha256"]


def test_unknown_group_is_one_clear_line(upstream, tmp_path, capsys):
    assert run(upstream, tmp_path / "d", "--only", "musik") == 2
    err = capsys.readouterr().err.strip()
    assert err == "fetch_data: error: unknown data group 'musik'; groups: music, clips, loops, lib, joints"


def test_folder_names_select_groups():
    manifest = load_manifest()
    mocap = {e["group"] for e in fetch_data.select(manifest, "mocap")}
    assert mocap == {"cmu_salsa", "cmu_modern", "cmu_breakdance"}
    library = fetch_data.select(manifest, ["freedoom"])
    assert "music_library/README.md" in {e["path"] for e in library}


@pytest.mark.parametrize("compression", ["xz", "gz", "bz2"])
def test_deb_members_come_out_byte_for_byte(tmp_path, compression):
    files = {"usr/share/a.bin": bytes(range(256)) * 3, "usr/share/doc/b/copyright": b"x" * 101}
    deb = _write(tmp_path / "p.deb", make_deb(files, compression))
    got = data_extract.extract_deb_members(deb, list(files), tmp_path / "x")
    assert {m: p.read_bytes() for m, p in got.items()} == files
    with pytest.raises(data_extract.ExtractError, match="the package holds no usr/nothing"):
        data_extract.extract_deb_members(deb, ["usr/share/a.bin", "usr/nothing"], tmp_path / "y")
    with pytest.raises(data_extract.ExtractError, match="not an ar archive"):
        data_extract.extract_deb_members(_write(tmp_path / "q.deb", b"PK\3\4 a zip"), ["a"], tmp_path / "z")


def test_a_member_the_package_lacks_is_named(upstream, server, tmp_path, capsys):
    manifest = json.loads(upstream["manifest_path"].read_text())
    manifest["files"][2]["extract"] = [{"deb": "usr/share/pkg/renamed.flac"}]
    path = _write(tmp_path / "m3.json", json.dumps(manifest).encode())
    assert main(["-o", str(tmp_path / "data"), "--manifest", str(path), "--source", base(server),
                 "--only", "loops"]) == 2
    err = capsys.readouterr().err
    assert "failed: loops/loop.flac: pkg_1.0~1_all.deb: the package holds no usr/share/pkg/renamed.flac" in err
    assert "1 file(s) missing or altered" in err and (tmp_path / "data/loops/COPYRIGHT.pkg").is_file()


# ---------------------------------------------------------------------------------------------- verify

def test_verify_names_altered_and_missing_files(upstream, server, tmp_path, capsys):
    out = tmp_path / "data"
    assert run(upstream, out, "--source", base(server)) == 0
    assert verify(out, manifest=upstream["manifest"]) == []          # fills the hash cache
    song = out / "music/song (1).ogg"
    stamp = song.stat()
    data = bytearray(song.read_bytes())
    data[100] ^= 1                                                     # same size, one bit flipped
    song.write_bytes(bytes(data))
    os.utime(song, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))         # even with its old mtime
    (out / "lib/D_TWO.mid").unlink()
    problems = verify(out, manifest=upstream["manifest"])
    want = upstream["manifest"]["files"][0]["sha256"]
    assert problems == [Problem("music/song (1).ogg", "altered", f"sha256 {sha(bytes(data))}, expected {want}"),
                        Problem("lib/D_TWO.mid", "missing")]
    assert str(problems[1]) == "missing: lib/D_TWO.mid"
    assert run(upstream, out, "--verify-only") == 2
    err = capsys.readouterr().err
    assert "2 file(s) missing or altered" in err
    assert "  altered: music/song (1).ogg: sha256" in err and "  missing: lib/D_TWO.mid" in err
    assert verify(out, groups="joints,loops", manifest=upstream["manifest"]) == []


def test_check_data_folder_raises_one_line_after_listing(upstream, tmp_path, capsys):
    (tmp_path / "d").mkdir()
    with pytest.raises(fetch_data.E3D2Error) as err:
        fetch_data.check_data_folder(tmp_path / "d", groups=["lib"], manifest=upstream["manifest"])
    assert "4 data file(s) missing or altered" in str(err.value)
    assert "fetch_data.py -o" in str(err.value) and "--only lib" in str(err.value)
    assert capsys.readouterr().err.count("  missing: lib/") == 4


def test_rebuilt_renders_match_up_to_the_ogg_serial(tmp_path):
    pages = [ogg_page(1111, 0, b"\x01vorbis" + bytes(20), 2), ogg_page(1111, 1, bytes(range(256)) * 2),
             ogg_page(1111, 2, b"end", 4)]
    reference = b"".join(pages)
    same_audio = reference.replace(struct.pack("<I", 1111), struct.pack("<I", 2222))
    other_audio = bytearray(same_audio)
    other_audio[-1] ^= 0xFF
    (tmp_path / "d").mkdir()
    entry = {"path": "x.ogg", "group": "g", "size": len(reference), "sha256": sha(reference), "kind": "rebuilt",
             "sha256_ignoring_ogg_serials": data_extract.ogg_sha256_ignoring_serials(
                 _write(tmp_path / "ref.ogg", reference))}
    _write(tmp_path / "d/x.ogg", same_audio)
    assert sha(same_audio) != sha(reference)
    assert fetch_data.file_problem(tmp_path / "d", entry) is None
    _write(tmp_path / "d/x.ogg", bytes(other_audio))
    assert fetch_data.file_problem(tmp_path / "d", entry).status == "altered"
    assert data_extract.ogg_sha256_ignoring_serials(_write(tmp_path / "bad.ogg", b"OggS\0")) is None


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_renders_are_manual_without_fluidsynth(upstream, server, tmp_path, monkeypatch, capsys):
    """A rebuilt file whose tool cannot run is reported as manual, with what to install; nothing is rendered."""
    manifest = json.loads(upstream["manifest_path"].read_text())
    manifest["files"].append({"path": "lib/D_ONE.ogg", "group": "lib", "size": 10, "sha256": "0" * 64,
                              "kind": "rebuilt", "tool": "lib/render.py"})
    manifest["rebuild"] = {"lib/render.py": {"inputs": [{"archive": "pkg", "member": "usr/share/games/game.wad"}],
                                             "needs": "fluidsynth"}}
    path = tmp_path / "m2.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setattr(fetch_data.shutil, "which", lambda name: None)
    assert main(["-o", str(tmp_path / "data"), "--manifest", str(path), "--source", base(server), "--only", "lib"]) == 2
    err = capsys.readouterr().err
    assert "manual: lib/D_ONE.ogg: needs the fluidsynth program (Debian/Ubuntu: apt-get install fluidsynth" in err
    assert "1 file(s) missing or altered" in err           # the rest of the group arrived
    assert (tmp_path / "data/lib/D_TWO.mid").is_file()


# ---------------------------------------------------------------------------------------------- the real manifest

def test_real_manifest_is_complete_and_its_bundled_files_are_in_the_repository():
    manifest = load_manifest()
    files = manifest["files"]
    assert len({e["path"] for e in files}) == len(files)
    groups = manifest["groups"]
    for entry in files:
        assert entry["group"] in groups and entry["path"].startswith(groups[entry["group"]]["folder"] + "/") or \
            entry["path"] == "music_library/README.md", entry["path"]
        assert len(entry["sha256"]) == 64 and entry["size"] > 0
        if entry["kind"] == "bundled":
            assert sha((ROOT / entry["repo_path"]).read_bytes()) == entry["sha256"], entry["repo_path"]
        elif entry["kind"] == "download":
            for url in entry["urls"]:
                assert url.startswith("https://")
                if "raw.githubusercontent.com" in url:
                    assert len(urlsplit(url).path.split("/")[3]) == 40, url   # pinned to a commit
        elif entry["kind"] == "archive":
            assert entry["archive"] in manifest["archives"] and "deb" in entry["extract"][0]
        else:
            assert entry["kind"] == "rebuilt" and entry["tool"] in manifest["rebuild"]
            assert any(e["path"] == entry["tool"] for e in files)
            if entry["path"].endswith(".ogg"):
                assert len(entry["sha256_ignoring_ogg_serials"]) == 64
    kinds = {k: sum(e["kind"] == k for e in files) for k in ("download", "archive", "bundled", "rebuilt")}
    assert kinds == {"download": 62, "archive": 114, "bundled": 102, "rebuilt": 40}


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="no reference copy of the data beside the repository")
def test_real_manifest_matches_the_reference_data():
    assert [str(p) for p in verify(REFERENCE, cache=False)] == []
