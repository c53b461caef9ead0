"""The numba target guard: generic code only where LLVM's CPU model lacks the AVX-512 the CPU has."""
import os
import subprocess
import sys

import numpy as np

from e3d2_core import numba_target


def test_a_zen4_that_llvm_calls_znver3_is_mislabelled():
    features = {"avx2": True, "avx512f": True, "avx512bw": True}
    assert numba_target.mislabelled_avx512("znver3", features)
    assert not numba_target.mislabelled_avx512("znver4", features)
    assert not numba_target.mislabelled_avx512("znver3", {"avx2": True, "avx512f": False})


def test_the_users_own_numba_cpu_name_is_kept():
    env = dict(os.environ, NUMBA_CPU_NAME="host")
    out = subprocess.run([sys.executable, "-c", "import e3d2_core, os; print(os.environ['NUMBA_CPU_NAME'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "host"


def test_librosa_beat_tracking_runs_after_import():
    # on a mislabelled host this segfaulted before the guard; a child process keeps a crash from taking pytest down
    code = ("import e3d2_core, numpy as np, librosa\n"
            "t = np.arange(22050 * 8) / 22050\n"
            "y = (np.sin(2 * np.pi * 440 * t) * (np.mod(t, 0.5) < 0.05)).astype(np.float32)\n"
            "tempo, beats = librosa.beat.beat_track(y=y, sr=22050)\n"
            "print(float(np.atleast_1d(tempo)[0]))\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_NAME"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(float(out.stdout) - 120.0) < 3.0
