"""e3d2: music-driven 3D dance generation (E3D2: reward model from automatically ranked demonstrations)."""
from e3d2_core import numba_target
from e3d2_core.errors import E3D2Error

numba_target.configure()      # before librosa imports numba (e3d2_core/numba_target.py says why)

__version__ = "0.1.0"
__all__ = ["E3D2Error", "__version__"]
