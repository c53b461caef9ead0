"""Retargeting between SMPL and other skeletons, both ways; one job per module.

==================  ===================================================================================
``kinematics``      the rotation geometry of retargeting: Euler modes, swings, Kabsch, snapping to axes
``bonemap``         bone maps as data: JSON presets (SMPL/SMPL-X, Mixamo, Rigify, UE4/UE5, VRM), files
``names``           the generic name matcher and rig detection (also for importers of unknown rigs)
``rig``             a target armature at rest and how it lines up with SMPL (frame, alignment, scale, floor)
``transfer``        SMPL dance -> a rig's keys (world space, root motion, floor, foot lock); rig -> SMPL
``footlock``        foot contacts from height and speed, pinned by two-bone leg IK
``loop``            make a take loop (its end blended into its start), mirror a take
``quality``         how closely a retargeted dance follows its source (normalised joint error, facing...)
``to_smpl``         BVH and named joint tracks (CMU, iClone, Neo...) -> SMPL poses, for the importers
==================  ===================================================================================

Everything but ``to_smpl`` imports only numpy, this package and the torch-free core (``rotations``,
``skeleton``), so the Blender add-on uses it directly.
"""
