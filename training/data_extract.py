"""Take single files out of the containers the training data is published in, with Python's standard library only.

* Debian packages (``.deb``): an ``ar`` archive whose ``data.tar.{xz,gz,bz2,zst}`` member holds the files;
* zip archives (a game's ``.pk3`` is one);
* Doom WAD files (the Freedoom music lumps): ``'IWAD'``/``'PWAD'``, int32 lump count, int32 directory offset, then
  16-byte entries (int32 offset, int32 size, 8-byte NUL-padded name), all little-endian;
* gzip streams (Debian ships changelogs and credits gzipped).

And one checksum: the SHA-256 of an Ogg stream with its serial numbers and page CRCs blanked, because re-encoding
the same audio gives the same pages except for the random stream serial (and so the CRC).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

AR_MAGIC = b"!<arch>\n"


class ExtractError(Exception):
    """A container is not what the manifest says (wrong format, member missing)."""


class _Window(io.RawIOBase):
    """A read-only view of ``size`` bytes of ``handle`` from its current position (one ar member)."""

    def __init__(self, handle, size: int):
        self._handle, self._left = handle, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        n = self._handle.readinto(memoryview(buffer)[:min(len(buffer), self._left)])
        self._left -= n
        return n


def _ar_members(handle):
    """Yield ``(name, size)`` for each member of an ``ar`` archive; the handle sits at the member's data."""
    if handle.read(8) != AR_MAGIC:
        raise ExtractError("not an ar archive (a .deb starts with '!<arch>')")
    while True:
        header = handle.read(60)
        if not header:
            return
        if len(header) != 60 or header[58:60] != b"`\n":
            raise ExtractError("truncated or corrupt ar header")
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = handle.tell()
        yield name, size
        handle.seek(start + size + (size & 1))   # members are padded to an even length


def _open_tar_stream(raw, name: str):
    """A streaming tarfile over a deb's data member (``tarfile`` reads xz, gz and bz2; zstd where Python has it)."""
    if name.endswith(".zst"):
        try:
            from compression import zstd  # Python >= 3.14
            return tarfile.open(fileobj=zstd.ZstdFile(raw), mode="r|")
        except ImportError:
            try:
                import zstandard
            except ImportError:
                raise ExtractError(f"{name} is zstd-compressed: needs Python >= 3.14 or the 'zstandard' "
                                   "module (pip install zstandard)") from None
            return tarfile.open(fileobj=zstandard.ZstdDecompressor().stream_reader(raw), mode="r|")
    return tarfile.open(fileobj=raw, mode="r|*")


def extract_deb_members(deb, wanted, out_dir, *, missing_ok: bool = False) -> dict[str, Path]:
    """Write the ``wanted`` members of a Debian package's data archive into ``out_dir``, in one pass.

    Parameters
    ----------
    deb : path of the ``.deb`` file
    wanted : iterable of paths inside the package, without the leading ``./`` (``usr/share/doc/x/copyright``)
    out_dir : folder for the extracted files (created); each lands at ``out_dir/<member path>``
    missing_ok : return what was found instead of raising when some wanted members are absent

    Returns
    -------
    dict mapping each wanted member found to the file it was written to. Raises :class:`ExtractError` naming
    the members the package does not hold (unless ``missing_ok``), or if the file is no Debian package.
    """
    wanted = set(wanted)
    out_dir = Path(out_dir)
    found: dict[str, Path] = {}
    with open(deb, "rb") as handle:
        for name, size in _ar_members(handle):
            if not name.startswith("data.tar"):
                continue
            with _open_tar_stream(io.BufferedReader(_Window(handle, size), 1 << 20), name) as tar:
                for info in tar:
                    member = info.name[2:] if info.name.startswith("./") else info.name
                    if member not in wanted or not info.isfile():
                        continue
                    target = out_dir / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    found[member] = target
            break
        else:
            raise ExtractError("no data.tar member: not a Debian binary package")
    missing = sorted(wanted - set(found))
    if missing and not missing_ok:
        raise ExtractError("the package holds no " + ", ".join(missing))
    return found


def zip_member(path, name: str) -> bytes:
    """The bytes of member ``name`` of the zip archive at ``path``."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name)
    except KeyError:
        raise ExtractError(f"the zip archive holds no {name}") from None
    except zipfile.BadZipFile as err:
        raise ExtractError(f"not a zip archive ({err})") from None


def wad_lumps(path) -> dict[str, bytes]:
    """The lumps of the Doom WAD file at ``path`` by name (the first lump of each name, as a game looks them up)."""
    data = Path(path).read_bytes()
    if len(data) < 12:
        raise ExtractError("not a WAD file (too short)")
    ident, count, directory = struct.unpack_from("<4sii", data, 0)
    if ident not in (b"IWAD", b"PWAD"):
        raise ExtractError("not a WAD file (no IWAD/PWAD header)")
    if count < 0 or directory < 0 or directory + 16 * count > len(data):
        raise ExtractError("corrupt WAD directory")
    lumps: dict[str, bytes] = {}
    for i in range(count):
        offset, size, raw = struct.unpack_from("<ii8s", data, directory + 16 * i)
        lumps.setdefault(raw.split(b"\0")[0].decode("ascii", "replace"), data[offset:offset + size])
    return lumps


def gunzip(path) -> bytes:
    """The decompressed bytes of the gzip file at ``path``."""
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as err:
        raise ExtractError(f"not a gzip file ({err})") from None


def ogg_sha256_ignoring_serials(path) -> str | None:
    """SHA-256 of an Ogg file's pages with each page's stream serial number and CRC set to zero.

    Two encodes of the same audio by the same encoder differ only there (the serial is random, the CRC covers it),
    so equal digests mean the same pages, granule positions and packets. Returns None if the file is not a
    well-formed Ogg stream (a page header that does not start with ``OggS`` or runs past the end).
    """
    data = Path(path).read_bytes()
    digest, pos = hashlib.sha256(), 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            return None
        n_segments = data[pos + 26]
        body = sum(data[pos + 27:pos + 27 + n_segments])
        end = pos + 27 + n_segments + body
        if end > len(data):
            return None
        page = bytearray(data[pos:end])
        page[14:18] = b"\0\0\0\0"   # bitstream serial number
        page[22:26] = b"\0\0\0\0"   # CRC32 of the page (covers the serial)
        digest.update(page)
        pos = end
    return digest.hexdigest()
