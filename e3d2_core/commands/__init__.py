"""Sub-commands of the ``e3d2`` CLI (see ``e3d2_core/cli.py`` for the module contract)."""
