"""Read pickles (AIST++ ``.pkl``, EDGE ``.pkl``, Bailando's pickled ``.npy``) without letting them run code.

Unpickling calls whatever functions the file names. :class:`DataOnlyUnpickler` resolves only the handful of
numpy names needed to rebuild arrays and dtypes; plain containers (dict, list, tuple, str, numbers) need no
lookup at all. Anything else -- ``os.system``, ``torch`` tensors, arbitrary classes -- is refused with an
:class:`E3D2Error` before it can be called.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error

# (module, name) pairs a numpy-array pickle needs; numpy 2 writes "numpy._core", numpy 1 "numpy.core".
_ALLOWED = {
    (module, name)
    for prefix in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{prefix}.multiarray", "_reconstruct"),
        (f"{prefix}.multiarray", "scalar"),
        (f"{prefix}.numeric", "_frombuffer"),
    )
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # protocol 2 stores bytes via encode


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a function or class outside the allowed numpy set."""


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, and nothing else."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise RefusedGlobal(f"refusing to load {module}.{name} (only numpy arrays and plain data are read)")


def load_pickle(path) -> object:
    """Unpickle ``path`` with :class:`DataOnlyUnpickler`; one-line :class:`E3D2Error` for any failure."""
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as handle:
        return _unpickle(handle, path)


def load_pickled_npy(path) -> object:
    """The object stored in a pickled ``.npy`` (``np.save`` of a dict): read the header, unpickle the payload.

    A plain numeric ``.npy`` is returned as its array.
    """
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            shape, _, dtype = _read_header(handle, version)
        except (ValueError, EOFError, OSError) as err:
            raise E3D2Error(f"not a .npy file ({err})", path=path) from None
        if not dtype.hasobject:
            handle.seek(0)
            return _load_plain_npy(handle, path)
        value = _unpickle(handle, path)
    if isinstance(value, np.ndarray) and value.dtype.hasobject and value.shape == () and shape == ():
        return value.item()
    return value


def _read_header(handle, version):
    """(shape, fortran_order, dtype) of a .npy header, through numpy's public readers (its private one is gone in
    numpy 2)."""
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    raise ValueError(f".npy format version {version[0]}.{version[1]} is not read here; re-save it with np.save")


def _unpickle(handle, path: Path):
    try:
        return DataOnlyUnpickler(handle, encoding="latin1").load()
    except RefusedGlobal as err:
        raise E3D2Error(f"unsafe pickle: {err}", path=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            UnicodeDecodeError) as err:
        raise E3D2Error(f"truncated or malformed pickle ({type(err).__name__}: {err})", path=path) from None


def _load_plain_npy(handle, path: Path) -> np.ndarray:
    try:
        return np.load(io.BytesIO(handle.read()), allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise E3D2Error(f"truncated or malformed .npy ({err})", path=path) from None


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise E3D2Error("no such file", path=path)
    if path.stat().st_size == 0:
        raise E3D2Error("file is empty", path=path)
