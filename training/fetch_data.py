"""Download the training data from the projects that publish it, and check every file's SHA-256.

    python training/fetch_data.py -o data/real                    # fetch what is missing, then check it all
    python training/fetch_data.py -o data/real --verify-only      # check a folder: name each missing/altered file
    python training/fetch_data.py -o data/real --only music,loops # some groups (see --list)
    python training/fetch_data.py -o data/real --source http://mirror.example/base

Every file of the folder is listed in ``training/data_manifest.json`` with its size, SHA-256 and how to get it:
``download`` (byte for byte from the project's own host, or a raw file of its repository at a pinned commit),
``archive`` (byte for byte out of a pinned Debian package, then out of a zip or WAD inside it, or gunzipped),
``bundled`` (written for this data set, or published nowhere as such: copied from this repository), ``rebuilt``
(the Freedoom renders: made by the shipped ``make_freedoom_music.py`` with fluidsynth from the fetched MIDI and
soundfont; they match the reference up to the Ogg serial numbers). ``docs/training.md`` lists the sources.

The run is idempotent and resumable: files already in place with the right hash are skipped, downloads go to
``DATA/.downloads/`` as ``.part`` files that the next run continues (HTTP range requests), and every file is
written to a temporary name and renamed into place only once its hash is right. A file that was there with the
wrong hash is kept beside the new one as ``NAME.altered``. Exit status 2 if anything is still missing or
altered, with a summary naming every such file.

``--source BASE`` fetches each upstream URL from a mirror instead: ``https://host/path`` is read from
``BASE/host/path`` (BASE an http(s)/file URL or a folder; the layout ``wget -x`` makes).

The data recipe checks a folder before reading it with :func:`verify` (a list of :class:`Problem`, empty when
every file matches) or :func:`check_data_folder` (prints the problems, raises ``E3D2Error``).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3d2_core.errors import E3D2Error  # noqa: E402
from e3d2_core.fileio import atomic_path  # noqa: E402
from training.data_extract import (ExtractError, extract_deb_members, gunzip,  # noqa: E402
                                   ogg_sha256_ignoring_serials, wad_lumps, zip_member)

REPO = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).resolve().with_name("data_manifest.json")
DOWNLOADS = ".downloads"          # inside the data folder, so renames stay on one file system
TIMEOUT_S = 60                     # per network read
USER_AGENT = "e3d2-fetch-data/1 (+training/fetch_data.py)"
BLOCK = 1 << 20


@dataclass(frozen=True)
class Problem:
    """One file that is not as the manifest says. ``str()`` is the one line a user sees."""

    path: str       # path inside the data folder
    status: str     # 'missing', 'altered', 'network', 'manual' or 'failed'
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status}: {self.path}" + (f": {self.detail}" if self.detail else "")


# ---------------------------------------------------------------------------------------------------- manifest

def load_manifest(path=None) -> dict:
    """Read the manifest (default ``training/data_manifest.json``) and check that its paths stay inside a folder."""
    path = Path(path or MANIFEST)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise E3D2Error(f"cannot read the data manifest ({err})", path=path) from None
    for entry in manifest.get("files", ()):
        rel = entry.get("path", "")
        if not rel or rel.startswith("/") or ".." in rel.split("/") or rel.split("/")[0] == DOWNLOADS:
            raise E3D2Error(f"manifest entry with a bad path {rel!r}", path=path)
    return manifest


def group_names(manifest: dict) -> list[str]:
    return list(manifest["groups"])


def select(manifest: dict, groups=None) -> list[dict]:
    """The manifest's file entries in ``groups`` (names, or a comma-separated string; None: all).

    A name may also be a folder that holds groups: ``mocap`` means cmu_salsa, cmu_modern and cmu_breakdance.
    """
    if groups is None:
        return list(manifest["files"])
    if isinstance(groups, str):
        groups = [g for g in groups.split(",") if g.strip()]
    wanted: set[str] = set()
    for name in (g.strip().strip("/") for g in groups):
        hits = {g for g, spec in manifest["groups"].items()
                if name == g or (spec["folder"] + "/").startswith(name + "/")}
        if not hits:
            raise E3D2Error(f"unknown data group {name!r}; groups: {', '.join(group_names(manifest))}")
        wanted |= hits
    return [e for e in manifest["files"] if wanted & {e["group"], *e.get("also", ())}]


# ---------------------------------------------------------------------------------------------------- verify

def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_file() -> Path:
    base = os.environ.get("E3D2_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "e3d2")
    return Path(base) / "data_hashes.json"


class _HashCache:
    """SHA-256 of files keyed by (size, mtime, ctime, inode), kept between runs; best effort, never required.

    ctime cannot be set back by a program, so a file that was changed is hashed again even if its mtime was
    restored.
    """

    def __init__(self, where):
        self.path = None if where is False else (_cache_file() if where is True else Path(where))
        self.table: dict = {}
        self.dirty = False
        if self.path is not None:
            with contextlib.suppress(OSError, ValueError):
                self.table = json.loads(self.path.read_text())

    def sha256(self, path: Path, st: os.stat_result) -> str:
        key = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = self.table.get(key)
        if hit and hit[:4] == stamp:
            return hit[4]
        digest = _sha256(path)
        if self.path is not None:
            self.table[key] = stamp + [digest]
            self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(self.table))


def _matches(entry: dict, path: Path, digest: str) -> bool:
    """Whether a file with this digest is the manifest's file (a rebuilt render may differ in its Ogg serials)."""
    if digest == entry["sha256"]:
        return True
    blind = entry.get("sha256_ignoring_ogg_serials")
    return bool(blind) and ogg_sha256_ignoring_serials(path) == blind


def file_problem(folder, entry: dict, cache=None) -> Problem | None:
    """None if ``folder/entry['path']`` is the manifest's file, else what is wrong with it."""
    path = Path(folder) / entry["path"]
    try:
        st = path.stat()
    except FileNotFoundError:
        return Problem(entry["path"], "missing")
    except OSError as err:
        return Problem(entry["path"], "missing", f"cannot read it ({err.strerror})")
    if not path.is_file():
        return Problem(entry["path"], "altered", "not a regular file")
    try:
        digest = cache.sha256(path, st) if cache is not None else _sha256(path)
    except OSError as err:
        return Problem(entry["path"], "altered", f"cannot read it ({err.strerror})")
    if st.st_size != entry["size"]:
        return Problem(entry["path"], "altered", f"size {st.st_size} bytes, expected {entry['size']}; "
                       f"sha256 {digest}, expected {entry['sha256']}")
    if not _matches(entry, path, digest):
        return Problem(entry["path"], "altered", f"sha256 {digest}, expected {entry['sha256']}")
    return None


def verify(folder, *, groups=None, manifest=None, cache=True) -> list[Problem]:
    """Check a data folder against the manifest, file by file.

    Parameters
    ----------
    folder : the data folder (the layout ``fetch_data.py -o`` writes)
    groups : group names to check (list or comma-separated string; see ``--list``); None checks every file
    manifest : a loaded manifest (default: ``training/data_manifest.json``)
    cache : True keeps file hashes between runs in ``$E3D2_CACHE_DIR`` (else ``~/.cache/e3d2``), keyed by
        size, mtime, ctime and inode, so an unchanged folder is checked without re-reading it; False always
        hashes; a path names the cache file

    Returns
    -------
    list of :class:`Problem` (``missing`` or ``altered``, one per file, in manifest order); empty when every
    file matches. Extra files in the folder are not problems.
    """
    manifest = manifest or load_manifest()
    store = _HashCache(cache)
    problems = [p for e in select(manifest, groups) if (p := file_problem(folder, e, store)) is not None]
    store.save()
    return problems


def check_data_folder(folder, *, groups=None, manifest=None, stream=None) -> None:
    """Verify ``folder`` for a recipe: print each problem on its own line to ``stream`` (stderr), then raise
    :class:`E3D2Error` with a one-line summary and the command that repairs the folder."""
    problems = verify(folder, groups=groups, manifest=manifest)
    if not problems:
        return
    stream = stream or sys.stderr
    for problem in problems:
        print(f"  {problem}", file=stream)
    only = "" if groups is None else f" --only {groups if isinstance(groups, str) else ','.join(groups)}"
    raise E3D2Error(f"{len(problems)} data file(s) missing or altered (listed above); run "
                    f"python training/fetch_data.py -o {folder}{only}", path=folder)


# ---------------------------------------------------------------------------------------------------- transfer

def source_locations(urls, source=None) -> list:
    """Where to read each upstream URL: itself, or its copy under a mirror ``source`` (URL or folder).

    ``https://host/a/b`` becomes ``SOURCE/host/a/b``; folders and file:// mirrors give :class:`Path` objects.
    """
    if source is None:
        return list(urls)
    out = []
    for url in urls:
        parts = urlsplit(url)
        rel = parts.netloc + unquote(parts.path)
        if source.startswith(("http://", "https://")):
            out.append(source.rstrip("/") + "/" + quote(rel, safe="/()~"))
        elif source.startswith("file://"):
            out.append(Path(unquote(urlsplit(source).path)) / rel)
        else:
            out.append(Path(source) / rel)
    return out


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"cannot connect ({err.reason})"
    if isinstance(err, TimeoutError):
        return f"no answer for {TIMEOUT_S} s"
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, (_ShortRead, http.client.IncompleteRead)):
        return "the connection closed before the end of the file (run again to resume)"
    if isinstance(err, ConnectionError):
        return f"connection lost ({err.strerror or type(err).__name__}; run again to resume)"
    return str(err) or type(err).__name__


def _transfer(location, part: Path, size: int) -> None:
    """Bring ``location`` into ``part``, continuing a partial ``part`` with an HTTP range request."""
    if isinstance(location, Path):
        shutil.copyfile(location, part)
        return
    have = part.stat().st_size if part.exists() else 0
    if have >= size:
        if have == size:
            return              # complete from an earlier run; the hash check decides
        part.unlink()
        have = 0
    request = urllib.request.Request(location, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:
            raise
        part.unlink()            # the server refuses our range: start again
        return _transfer(location, part, size)
    with response:
        resumed = have and response.status == 206 and \
            response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        declared = response.length           # bytes the server promised for this response (None: unknown)
        got = 0
        with open(part, "ab" if resumed else "wb") as handle:
            for block in iter(lambda: response.read(BLOCK), b""):
                handle.write(block)
                got += len(block)
    if declared is not None and got < declared:
        raise _ShortRead()               # http.client ends such a body quietly; the .part stays for the next run


class _ShortRead(ConnectionError):
    pass


def download(urls, target: Path, *, size: int, sha256: str, part_dir: Path, source=None, log=print) -> str | None:
    """Fetch a file from the first of ``urls`` that gives the right bytes, into ``target`` (atomically).

    The partial download lives in ``part_dir`` as ``NAME.<hash>.part`` until its size and SHA-256 are right, so an
    interrupted run continues where it stopped. Returns None on success, else one line naming each URL tried
    and what went wrong (network error, or hash mismatch with both hashes).
    """
    part_dir.mkdir(parents=True, exist_ok=True)
    part = part_dir / f"{target.name}.{sha256[:12]}.part"     # the hash keeps two files of one name apart
    errors = []
    for location in source_locations(urls, source):
        for attempt in range(2):           # a bad partial file from an earlier run gets one fresh start
            resuming = part.exists() and not isinstance(location, Path)
            try:
                _transfer(location, part, size)
            except (OSError, http.client.HTTPException, ValueError) as err:
                errors.append(f"{location}: {_reason(err)}")
                break
            got_size = part.stat().st_size
            got = _sha256(part)
            if got_size == size and got == sha256:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
                return None
            part.unlink()
            if not (resuming and attempt == 0):
                errors.append(f"{location}: hash mismatch: sha256 {got} ({got_size} bytes), "
                              f"expected {sha256} ({size} bytes)")
                break
            log(f"  the partial download of {target.name} was bad; starting it again")
    return "; ".join(errors)


class _Mismatch(Exception):
    pass


def _install(data: bytes | Path, entry: dict, folder: Path) -> str | None:
    """Write one file into the data folder if it is the manifest's file (temp + rename; an altered old copy is
    kept as ``NAME.altered``). Returns None, or what is wrong with the bytes offered ("sha256 X, expected Y")."""
    target = folder / entry["path"]
    try:
        with atomic_path(target) as tmp:
            if isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                tmp.write_bytes(data)
            digest = _sha256(tmp)
            if tmp.stat().st_size != entry["size"] or not _matches(entry, tmp, digest):
                raise _Mismatch(f"sha256 {digest} ({tmp.stat().st_size} bytes), expected {entry['sha256']} "
                                f"({entry['size']} bytes)")
            if target.exists():
                os.replace(target, target.with_name(target.name + ".altered"))
    except _Mismatch as err:
        return str(err)
    return None


# ---------------------------------------------------------------------------------------------------- fetch

def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _extract(entry: dict, members: dict[str, Path], wads: dict) -> bytes | Path:
    """Apply an archive entry's extraction steps after its ``deb`` member was written to ``members``."""
    steps = entry["extract"]
    current: bytes | Path = members[steps[0]["deb"]]
    for step in steps[1:]:
        if "zip" in step:
            current = zip_member(current, step["zip"])
        elif "wad" in step:
            if current not in wads:
                wads[current] = wad_lumps(current)
            if step["wad"] not in wads[current]:
                raise ExtractError(f"the WAD holds no lump {step['wad']}")
            current = wads[current][step["wad"]]
        elif "gunzip" in step:
            current = gunzip(current)
        else:
            raise ExtractError(f"unknown extraction step {step}")
    return current


def _render_tools() -> tuple[dict | None, str]:
    """What the Freedoom renders need: ({'fluidsynth', 'ffmpeg'}, '') or (None, what is missing)."""
    missing, tools = [], {}
    tools["fluidsynth"] = shutil.which("fluidsynth")
    if not tools["fluidsynth"]:
        missing.append("the fluidsynth program (Debian/Ubuntu: apt-get install fluidsynth; the reference renders "
                       "were made with fluidsynth 2.3.1)")
    ffmpeg = os.environ.get("FFMPEG")
    if not ffmpeg:
        with contextlib.suppress(Exception):
            import imageio_ffmpeg
            ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    tools["ffmpeg"] = ffmpeg or shutil.which("ffmpeg")
    if not tools["ffmpeg"]:
        missing.append("an ffmpeg with libvorbis ($FFMPEG, or pip install imageio-ffmpeg)")
    for module in ("numpy", "soundfile"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the Python module {module}")
    return (None, "; ".join(missing)) if missing else (tools, "")


def _rebuild(todo: list[dict], manifest: dict, folder: Path, work: Path, members: dict, tools: dict,
             log) -> list[Problem]:
    """Run the documented tool on the fetched originals and install those outputs that match the manifest."""
    problems = []
    by_tool: dict[str, list[dict]] = {}
    for entry in todo:
        by_tool.setdefault(entry["tool"], []).append(entry)
    for tool, entries in by_tool.items():
        spec = manifest["rebuild"][tool]
        script = next((e for e in manifest["files"] if e["path"] == tool), None)
        script_path = REPO / script["repo_path"]
        if _sha256(script_path) != script["sha256"]:
            problems += [Problem(e["path"], "failed", f"this repository's {script['repo_path']} is altered")
                         for e in entries]
            continue
        inputs = [members[i["member"]] for i in spec["inputs"]]
        root = work / (spec["inputs"][0]["archive"] + ".x")   # the package tree: usr/share/games/doom/*.wad
        out = work / "rebuilt"
        shutil.rmtree(out, ignore_errors=True)
        version = subprocess.run([tools["fluidsynth"], "--version"], capture_output=True, text=True).stdout
        log(f"rendering with {tool.rsplit('/', 1)[1]} ({version.splitlines()[0] if version else 'fluidsynth'}); "
            "a few minutes")
        started = time.time()
        run = subprocess.run([sys.executable, str(script_path), str(root), str(inputs[-1]), str(out)],
                             env={**os.environ, "FFMPEG": tools["ffmpeg"]}, capture_output=True, text=True)
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no message"])[-1]
            problems += [Problem(e["path"], "failed", f"{tool} exited {run.returncode}: {last}") for e in entries]
            continue
        log(f"  rendered in {time.time() - started:.0f} s")
        for entry in entries:
            made = out / entry["path"].rsplit("/", 1)[1]
            if not made.is_file():
                problems.append(Problem(entry["path"], "failed", f"{tool} did not write it"))
                continue
            if mismatch := _install(made, entry, folder):
                problems.append(Problem(entry["path"], "failed", f"the rebuilt file differs from the reference "
                                        f"({mismatch}); it matches only when made as the reference was: "
                                        + spec["needs"]))
    return problems


def fetch(folder, *, source=None, groups=None, manifest=None, keep_downloads=False, cache=True,
          log=print) -> list[Problem]:
    """Bring ``folder`` to the manifest: fetch, extract, copy or rebuild every file that is missing or altered.

    Parameters
    ----------
    folder : the data folder (created)
    source : None for the upstream URLs, or a mirror (URL or folder) holding them as ``SOURCE/host/path``
    groups : group names (list or comma-separated string); None: all
    manifest : a loaded manifest (default: ``training/data_manifest.json``)
    keep_downloads : keep the downloaded archives in ``folder/.downloads`` after a complete run
    cache : as for :func:`verify`
    log : called with each progress line

    Returns
    -------
    list of :class:`Problem`: every selected file still missing or altered at the end, with the reason where
    the run knows it (network error, hash mismatch with both hashes, a tool that is not installed).
    """
    manifest = manifest or load_manifest()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / DOWNLOADS
    entries = select(manifest, groups)
    store = _HashCache(cache)
    todo = [e for e in entries if file_problem(folder, e, store) is not None]
    store.save()
    log(f"{len(entries) - len(todo)} of {len(entries)} files already in place in {folder}")
    reasons: dict[str, Problem] = {}

    def fail(problem: Problem) -> None:
        reasons[problem.path] = problem
        print(f"fetch_data: {problem}", file=sys.stderr)

    for entry in (e for e in todo if e["kind"] == "bundled"):
        if mismatch := _install(REPO / entry["repo_path"], entry, folder):
            fail(Problem(entry["path"], "failed", f"this repository's copy {entry['repo_path']} is altered: "
                         + mismatch))
    for entry in (e for e in todo if e["kind"] == "download"):
        log(f"download {entry['path']} ({_mb(entry['size'])})")
        error = download(entry["urls"], folder / entry["path"], size=entry["size"], sha256=entry["sha256"],
                         part_dir=work, source=source, log=log)
        if error:
            fail(Problem(entry["path"], "network" if "hash mismatch" not in error else "failed", error))

    rebuilt = [e for e in todo if e["kind"] == "rebuilt"]
    tools, missing_tools = _render_tools() if rebuilt else (None, "")
    if rebuilt and tools is None:
        for entry in rebuilt:
            fail(Problem(entry["path"], "manual", f"needs {missing_tools}; then run this command again"))
        rebuilt = []
    # archive members to write, by archive: the files themselves and the inputs of the rebuilds
    wanted: dict[str, dict[str, list[dict]]] = {}
    for entry in (e for e in todo if e["kind"] == "archive"):
        wanted.setdefault(entry["archive"], {}).setdefault(entry["extract"][0]["deb"], []).append(entry)
    for tool in {e["tool"] for e in rebuilt}:
        for item in manifest["rebuild"][tool]["inputs"]:
            wanted.setdefault(item["archive"], {}).setdefault(item["member"], [])
    members: dict[str, Path] = {}
    for name, by_member in wanted.items():
        archive = manifest["archives"][name]
        path = work / archive["file"]
        users = [e for group in by_member.values() for e in group]
        if not (path.is_file() and path.stat().st_size == archive["size"] and _sha256(path) == archive["sha256"]):
            log(f"download {archive['file']} ({_mb(archive['size'])}, {archive['package']})")
            error = download(archive["urls"], path, size=archive["size"], sha256=archive["sha256"],
                             part_dir=work, source=source, log=log)
            if error:
                for entry in users:
                    fail(Problem(entry["path"], "network" if "hash mismatch" not in error else "failed",
                                 f"{archive['file']}: {error}"))
                rebuilt = [e for e in rebuilt if not any(i["archive"] == name for i in
                                                         manifest["rebuild"][e["tool"]]["inputs"])]
                continue
        log(f"extract {len(by_member)} member(s) of {archive['file']}")
        try:
            members.update(extract_deb_members(path, by_member, work / (name + ".x"), missing_ok=True))
            wads: dict = {}
            for entry in users:
                if entry["extract"][0]["deb"] not in members:
                    fail(Problem(entry["path"], "failed", f"{archive['file']}: the package holds no "
                                 + entry["extract"][0]["deb"]))
                elif mismatch := _install(_extract(entry, members, wads), entry, folder):
                    fail(Problem(entry["path"], "failed", f"{archive['file']} gives {mismatch}"))
        except (ExtractError, OSError) as err:
            for entry in users:
                fail(Problem(entry["path"], "failed", f"{archive['file']}: {err}"))
            rebuilt = [e for e in rebuilt if not any(i["archive"] == name for i in
                                                     manifest["rebuild"][e["tool"]]["inputs"])]
    lacking = [e for e in rebuilt if any(i["member"] not in members for i in manifest["rebuild"][e["tool"]]["inputs"])]
    for entry in lacking:
        if entry["path"] not in reasons:
            fail(Problem(entry["path"], "failed", "an input of " + entry["tool"] + " could not be extracted"))
    rebuilt = [e for e in rebuilt if e not in lacking]
    if rebuilt:
        for problem in _rebuild(rebuilt, manifest, folder, work, members, tools, log):
            fail(problem)

    for extracted in work.glob("*.x"):
        shutil.rmtree(extracted, ignore_errors=True)
    shutil.rmtree(work / "rebuilt", ignore_errors=True)
    final = [reasons.get(p.path, p) for p in verify(folder, groups=groups, manifest=manifest, cache=cache)]
    if not final and not keep_downloads and work.is_dir():
        for name in {a["file"] for a in manifest["archives"].values()}:
            with contextlib.suppress(FileNotFoundError):
                (work / name).unlink()
        with contextlib.suppress(OSError):
            work.rmdir()             # only when empty: partial downloads of other groups stay
    return final


# ---------------------------------------------------------------------------------------------------- CLI

def describe(manifest: dict) -> str:
    """Groups, sources and licences, with how many files of each kind (for ``--list``)."""
    lines = []
    for name, spec in manifest["groups"].items():
        entries = select(manifest, [name])
        kinds: dict[str, int] = {}
        for e in entries:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        size = sum(e["size"] for e in entries)
        lines += [f"{name}  ({spec['folder']}/, {len(entries)} files, {_mb(size)}: "
                  + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")",
                  f"    {spec['what']}", f"    from: {spec['origin']}", f"    licence: {spec['licence']}"]
    return "\n".join(lines)


def _summary(problems: list[Problem], folder) -> None:
    print(f"fetch_data: {len(problems)} file(s) missing or altered in {folder}:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="fetch_data", description="Download the e3d2 training data from its original projects and check "
        "every file's SHA-256 against training/data_manifest.json.")
    parser.add_argument("-o", "--out", type=Path, help="the data folder to fill (or check)")
    parser.add_argument("--source", help="a mirror: read https://host/path from SOURCE/host/path "
                        "(http(s)/file URL or folder)")
    parser.add_argument("--only", help="comma-separated groups or folders (see --list), e.g. music,loops,mocap")
    parser.add_argument("--verify-only", action="store_true", help="download nothing: check the folder and name "
                        "each missing or altered file")
    parser.add_argument("--keep-downloads", action="store_true", help="keep the downloaded archives in "
                        "OUT/.downloads")
    parser.add_argument("--list", action="store_true", help="print the groups, their sources and licences")
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        manifest = load_manifest(args.manifest)
        if args.list:
            print(describe(manifest))
            return 0
        if args.out is None:
            parser.error("-o/--out DATA_DIR is required")
        selected = select(manifest, args.only)
        if args.verify_only:
            if not args.out.is_dir():
                raise E3D2Error("no such folder", path=args.out)
            problems = verify(args.out, groups=args.only, manifest=manifest)
        else:
            problems = fetch(args.out, source=args.source, groups=args.only, manifest=manifest,
                             keep_downloads=args.keep_downloads)
    except E3D2Error as err:
        print(f"fetch_data: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fetch_data: interrupted; the same command continues where this one stopped", file=sys.stderr)
        return 130
    if problems:
        _summary(problems, args.out)
        return 2
    print(f"fetch_data: all {len(selected)} files in {args.out} match the manifest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
