"""Keep librosa's numba-compiled code (beat tracking, pitch tracking) from crashing on mislabelled CPUs.

Some virtual machines show LLVM a CPU whose name it models without AVX-512 (a Zen 4 that LLVM 15 calls
``znver3``) while the CPU's feature list has AVX-512; numba then emits vector code that segfaults in
``librosa.beat.beat_track`` (the numba issue on VMs that report ``nocona`` with AVX-512 is the same kind).
On such a host, and only there, numba compiles for a generic x86-64 target instead. A ``NUMBA_CPU_NAME``
the user set is left alone.
"""
from __future__ import annotations

import os

# LLVM 15 CPU names (llvmlite 0.44) whose model includes AVX-512
_AVX512_CPUS = {"knl", "knm", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
                "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "znver4", "graniterapids",
                "emeraldrapids"}


def mislabelled_avx512(cpu_name: str, features: dict[str, bool]) -> bool:
    """True when the CPU has AVX-512 but LLVM's model of ``cpu_name`` does not."""
    return bool(features.get("avx512f")) and cpu_name not in _AVX512_CPUS


def configure() -> str | None:
    """Set ``NUMBA_CPU_NAME=generic`` on a mislabelled AVX-512 host before numba is imported; return it or None."""
    if "NUMBA_CPU_NAME" in os.environ:
        return None
    try:
        import llvmlite.binding as llvm
        name, features = llvm.get_host_cpu_name(), dict(llvm.get_host_cpu_features())
    except Exception:       # no llvmlite (a bare Blender Python): numba is not there either
        return None
    if mislabelled_avx512(name, features):
        os.environ["NUMBA_CPU_NAME"] = "generic"
        return "generic"
    return None
