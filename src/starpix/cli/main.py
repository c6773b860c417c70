"""The ``starpix`` command: one subcommand per job.

Heavy modules (numpy, astropy) are imported by each subcommand when it runs,
so ``starpix --help`` and small commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .._version import __version__

# subcommand name -> module under starpix.cli that registers it
SUBCOMMANDS = {
    "cutout": "cutout",
    "cube": "cube",
    "psf": "psf",
    "simulate": "simulate",
    "background": "background",
    "find": "find",
    "photometry": "photometry",
    "aperture": "aperture",
    "mask": "mask",
    "cosmics": "cosmics",
    "calibrate": "calibrate",
    "combine": "combine",
    "stack": "stack",
    "psf-stamp": "psf_stamp",
    "psf-select-stars": "psf_select_stars",
    "psf-stack": "psf_stack",
    "psf-scale-factor": "psf_scale_factor",
    "psf-unite": "psf_unite",
    "psf-subtract": "psf_subtract",
    "radial-profile": "radial_profile",
    "segment": "segment",
    "pipeline": "pipeline",
    "drizzle": "drizzle",
}


def build_parser(only=None):
    """The argument parser: every subcommand registered, or just the one named by ``only``.

    Registering one subcommand imports one module, which keeps the start of a
    small command short; the full parser serves ``starpix --help``.
    """
    parser = argparse.ArgumentParser(
        prog="starpix",
        description="Astronomical imaging: cutouts, TESS cubes and target pixel files, and more.",
        epilog="Run 'starpix SUBCOMMAND --help' for each subcommand's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"starpix {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, module_name in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f".{module_name}", __package__)
        module.register(subparsers)
    return parser


def main(argv=None):
    """Entry point of the ``starpix`` console script; returns the exit status."""
    from ._common import run

    words = sys.argv[1:] if argv is None else list(argv)
    command = words[0] if words and words[0] in SUBCOMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        if getattr(args, "subparser", None) is not None:
            args.subparser.print_help(sys.stderr)
        else:
            parser.print_help(sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
