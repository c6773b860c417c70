"""Pieces every subcommand shares: common options, error reporting,
and parsing of positions, sizes and target catalogues."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import re
import sys
import traceback
import warnings

from ..errors import InvalidParameterError, StarpixError

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in the description and epilog as written."""


def add_parser(subparsers, name, *, help, description, example, writes=True, label=None, add_help=True):
    """Register a subcommand with the options every subcommand has.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    name : str
    help : str
        One line for the list of subcommands.
    description : str
        What the subcommand does.
    example : str
        Example command lines, shown by ``--help``.
    writes : bool
        Add ``--overwrite`` (each subcommand adds its own ``-o/--output``).
    label : str, optional
        Name used in error messages (``cube build`` for a nested action).
    add_help : bool
        Add ``-h/--help``.  False leaves ``-h`` free (a command that mirrors
        Gnuastro uses it for ``--hdu``) and adds ``--help`` alone.
    """
    parser = subparsers.add_parser(
        name, help=help, description=description, epilog=f"example:\n{example}", formatter_class=HelpFormatter,
        add_help=add_help,
    )
    if not add_help:
        parser.add_argument("--help", action="help", default=argparse.SUPPRESS, help="show this help and exit")
    group = parser.add_argument_group("common options")
    group.add_argument("--debug", action="store_true", help="show the traceback of an error")
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors; no progress bar")
    if writes:
        group.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(subparser=parser, command_name=label or name)
    return parser


def add_group(subparsers, name, *, help, description, example, metavar="ACTION"):
    """Register a subcommand that only holds actions (``starpix cube build``, ``starpix psf plot``, ...).

    Returns the subparsers object the actions register into.
    """
    parser = subparsers.add_parser(name, help=help, description=description, epilog=f"example:\n{example}",
                                   formatter_class=HelpFormatter)
    parser.set_defaults(subparser=parser, command_name=name)
    return parser.add_subparsers(dest=f"{name}_command", metavar=metavar)


def run(args):
    """Run a parsed subcommand, turning errors into one line and exit 1."""
    name = getattr(args, "command_label", None) or getattr(args, "command_name", None) or "starpix"
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    try:
        status = args.func(args)
    except StarpixError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"starpix {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"starpix {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last-resort report, full traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"starpix {name}: error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1
    return 0 if status is None else status


def show_progress(args):
    """Progress bars: on in a terminal unless --quiet."""
    return not args.quiet and sys.stderr.isatty()


def say(args, message):
    """Print a result line unless --quiet."""
    if not args.quiet:
        print(message)


def _split_pair(text, option):
    parts = [part.strip() for part in re.split(r"[,\s]+", text.strip()) if part.strip()]
    if len(parts) != 2:
        raise InvalidParameterError(f"{option}: expected two values separated by a comma, got {text!r}")
    return parts


def parse_sky(text, option="--center"):
    """'RA,DEC' in degrees or sexagesimal ('10:00:00,+02:00:00', '10h00m00s,2d00m00s')."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ra, dec = _split_pair(text, option)
    try:  # plain numbers: degrees (astropy's angle parser cannot read '1e-3')
        ra, dec = float(ra), float(dec)
    except ValueError:
        pass
    else:
        if not (math.isfinite(ra) and math.isfinite(dec)):
            raise InvalidParameterError(f"{option}: cannot read {text!r} as RA,DEC (not finite)")
    sexagesimal = isinstance(ra, str) and any(mark in ra for mark in ":hms ")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. '24:00:00' is read as 0h with a warning
            return SkyCoord(ra, dec, unit=(u.hourangle if sexagesimal else u.deg, u.deg), frame="icrs")
    except Exception as exc:  # noqa: BLE001 - astropy's parsers raise several types
        raise InvalidParameterError(f"{option}: cannot read {text!r} as RA,DEC ({exc})") from None


def parse_pixel(text, option="--center"):
    """'X,Y' as floats."""
    parts = _split_pair(text, option)
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise InvalidParameterError(f"{option}: cannot read {text!r} as X,Y pixel positions") from None
    if not all(math.isfinite(value) for value in values):
        raise InvalidParameterError(f"{option}: cannot read {text!r} as X,Y pixel positions (not finite)")
    return values


def parse_size(text, option="--size"):
    """'5', '5,7' (ny,nx), '30arcsec', '1.5arcmin,2arcmin', '10pix'."""
    from astropy import units as u

    values = []
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) not in (1, 2):
        raise InvalidParameterError(f"{option}: expected one size or NY,NX, got {text!r}")
    for part in parts:
        match = re.fullmatch(rf"({_NUMBER})\s*([A-Za-z\"']*)", part)
        if match is None:
            raise InvalidParameterError(f"{option}: cannot read {part!r} as a size")
        number, unit = match.groups()
        value = float(number)
        if not math.isfinite(value):
            raise InvalidParameterError(f"{option}: {part!r} is not a finite size")
        if not unit:
            values.append(int(value) if value.is_integer() else value)
            continue
        unit = {'"': "arcsec", "'": "arcmin", "px": "pix", "pixel": "pix", "pixels": "pix"}.get(unit, unit)
        try:
            quantity = value * u.Unit(unit)
        except ValueError:
            raise InvalidParameterError(f"{option}: unknown unit {unit!r} in {part!r}") from None
        if quantity.unit != u.pix and quantity.unit.physical_type != "angle":
            raise InvalidParameterError(f"{option}: unit {unit!r} in {part!r} is neither an angle nor pixels")
        values.append(quantity)
    for value in values:
        number = value.value if hasattr(value, "value") else value
        if number <= 0:
            raise InvalidParameterError(f"{option}: sizes must be positive, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def parse_int_sizes(text, option):
    """'N' or 'NY,NX' as positive integers: an int, or a (ny, nx) tuple."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise InvalidParameterError(f"{option}: expected N or NY,NX integers, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise InvalidParameterError(f"{option}: expected one or two positive integers, got {text!r}")
    return tuple(values) if len(values) == 2 else values[0]


_RA_NAMES = ("ra", "ra_deg", "raj2000", "ra_obj", "alpha_j2000", "sky_centroid.ra")
_DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000", "dec_obj", "delta_j2000", "sky_centroid.dec")
_X_NAMES = ("x", "xcentroid", "x_0", "x_fit", "x_init", "xcenter")
_Y_NAMES = ("y", "ycentroid", "y_0", "y_fit", "y_init", "ycenter")


def _find_column(table, names):
    lower = {name.lower(): name for name in table.colnames}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def _degrees(column):
    import numpy as np
    from astropy import units as u

    unit = getattr(column, "unit", None)
    if unit is None or unit == u.dimensionless_unscaled:
        return np.asarray(column, dtype=float) * u.deg
    return u.Quantity(column).to(u.deg)


def read_targets(path, pixel=False):
    """Targets of a catalogue: a SkyCoord array (ra/dec columns) or (x, y) pairs.

    Sky columns (ra, dec in degrees, or a SkyCoord column) are used unless
    ``pixel`` is true or the table has only x/y columns.
    """
    import numpy as np
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from ..io import read_table

    table = read_table(path)
    if len(table) == 0:
        raise InvalidParameterError(f"{path}: the catalogue has no rows")
    if not pixel:
        for name in table.colnames:
            if isinstance(table[name], SkyCoord):
                return list(table[name])
        ra, dec = _find_column(table, _RA_NAMES), _find_column(table, _DEC_NAMES)
        if ra and dec:
            try:
                coords = SkyCoord(_degrees(table[ra]), _degrees(table[dec]), frame="icrs")
            except (ValueError, TypeError, u.UnitsError) as exc:
                raise InvalidParameterError(f"{path}: columns {ra}, {dec} are not RA, Dec ({exc})") from None
            return [coords[i] for i in range(len(coords))]
    x, y = _find_column(table, _X_NAMES), _find_column(table, _Y_NAMES)
    if x and y:
        return [(float(a), float(b)) for a, b in zip(np.asarray(table[x], float), np.asarray(table[y], float))]
    wanted = "x and y" if pixel else "ra and dec (or x and y)"
    raise InvalidParameterError(f"{path}: the catalogue needs columns {wanted}; it has {', '.join(table.colnames)}")


SCHEDULER_HELP = ("run the jobs on the Dask cluster of this scheduler (e.g. tcp://head:8786; needs "
                  "dask.distributed); workers read the inputs by name, so they must see the same files")


def add_parallel_options(parser):
    """Add ``--jobs N`` (local processes) and ``--scheduler ADDRESS`` (a Dask cluster) to a subcommand."""
    group = parser.add_argument_group("parallel execution")
    group.add_argument("--jobs", metavar="N", type=int, default=None,
                       help="worker processes on this machine (default: none, all in this process; "
                            "0: one per CPU)")
    group.add_argument("--scheduler", metavar="ADDRESS", help=SCHEDULER_HELP)
    return group


@contextlib.contextmanager
def parallel_executor(args):
    """``(executor, max_workers)`` for ``--jobs`` / ``--scheduler``; a Dask client is closed on exit."""
    from ..parallel import open_executor

    jobs = getattr(args, "jobs", None)
    scheduler = getattr(args, "scheduler", None)
    if scheduler is not None and jobs == 1:
        jobs = None  # a command whose --jobs defaults to 1
    if jobs is not None and jobs < 0:
        raise InvalidParameterError(f"--jobs: expected 0 (one per CPU) or a positive number, got {jobs}")
    if jobs == 0:
        if scheduler is not None:
            raise InvalidParameterError("--jobs and --scheduler: give one or the other, not both")
        yield "processes", None
        return
    with open_executor(jobs, scheduler) as pair:
        yield pair
