"""e3d2: music-driven 3D dance generation (E3D2: reward model from automatically ranked demonstrations)."""
from e3d2_core.errors import E3D2Error

__version__ = "0.1.0"
__all__ = ["E3D2Error", "__version__"]
