"""Compatibility names: the BVH/joint-track -> SMPL retargeting now lives in :mod:`e3d2_core.retarget.to_smpl`."""
from e3d2_core.retarget.to_smpl import (CMU, ICLONE, NEO, SKELETON_MAPS, SMPL_SHORT, SMPL_SNAKE, leg_scale,  # noqa: F401
                                        retarget_bvh, smpl_targets)
