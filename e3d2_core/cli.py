"""The ``e3d2`` command: one sub-command per module in ``e3d2_core/commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``, and keeps
its heavy imports (torch, librosa) inside ``run`` so that ``e3d2 --help`` stays instant. Any
:class:`~e3d2_core.errors.E3D2Error` becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from e3d2_core import __version__
from e3d2_core.errors import E3D2Error

# name -> module; the order is the order of `e3d2 --help`.
COMMANDS = {
    "import": "e3d2_core.commands.import_motion",
    "features": "e3d2_core.commands.features",
    "preview": "e3d2_core.commands.preview",
    "generate": "e3d2_core.commands.generate",
    "edit": "e3d2_core.commands.edit",
    "score": "e3d2_core.commands.score",
    "train": "e3d2_core.commands.train",
    "evaluate": "e3d2_core.commands.evaluate",
    "report": "e3d2_core.commands.report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e3d2", description="Music-driven 3D dance (E3D2).")
    parser.add_argument("--version", action="version", version=f"e3d2 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run, _parser=command)
    return parser


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args``, except that arguments a sub-command does not know are reported with that
    sub-command's usage (argparse leaves them to the top level, whose usage does not help)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    try:
        return int(args._run(args) or 0)
    except E3D2Error as err:
        print(f"e3d2 {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"e3d2 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
