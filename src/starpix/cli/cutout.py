"""``starpix cutout``: FITS, PNG or JPEG cutouts of images (astrocut's fits_cut and img_cut)."""

from __future__ import annotations

import time

from . import _common

EXAMPLE = """\
  starpix cutout field.fits --center 150.01,2.02 --size 64
  starpix cutout a.fits b.fits[SCI] --center 10:00:02.4,+02:01:12 --size 1arcmin,2arcmin
  starpix cutout field.fits --pixel 512.3,200 --size 101,151 -o star.fits
  starpix cutout g.fits r.fits i.fits --center 150.01,2.02 --size 200 --format png --colorize
  starpix cutout field.fits --catalog targets.ecsv --size 32 --output-dir cutouts/

Sizes are NY,NX (astropy's order; astrocut's cutout_size is NX,NY), in pixels
or with a unit (30arcsec, 1.5arcmin, 10pix).  --pixel positions are 0-based
(x, y), as in the Python API and astrocut."""


def register(subparsers):
    """Register ``starpix cutout``."""
    parser = _common.add_parser(
        subparsers, "cutout",
        help="cut regions out of FITS images, as FITS, PNG or JPEG",
        description="Cut regions around sky or pixel positions out of one or more FITS images. "
                    "FITS output follows astrocut's layout: one file per position with one CUTOUT "
                    "extension per input (or one file per input with --no-single-outfile).",
        example=EXAMPLE,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="FITS images; FILE[HDU] picks an HDU")
    where = parser.add_argument_group("positions (one or more)")
    where.add_argument("--center", action="append", default=[], metavar="RA,DEC",
                       help="sky position, degrees or sexagesimal (repeatable)")
    where.add_argument("--pixel", action="append", default=[], metavar="X,Y",
                       help="0-based pixel position (repeatable)")
    where.add_argument("--catalog", metavar="TABLE",
                       help="table of targets (ECSV, CSV, FITS) with ra/dec or x/y columns")
    parser.add_argument("--size", required=True, help="NY,NX or one size: pixels, or 30arcsec, 2arcmin, ...")
    parser.add_argument("--hdu", help="HDU to cut in every file: number, EXTNAME, or 'all'")
    parser.add_argument("--format", choices=("fits", "png", "jpg", "jpeg"), default="fits",
                        help="output format (default fits)")
    parser.add_argument("-o", "--output", help="output file name (when exactly one file is written)")
    parser.add_argument("--output-dir", default=".", help="directory of the outputs (default .)")
    parser.add_argument("--prefix", default="cutout", help="file-name prefix of combined outputs")
    parser.add_argument("--single-outfile", dest="single_outfile", action="store_true", default=True,
                        help="FITS: one file per position, one extension per input (default)")
    parser.add_argument("--no-single-outfile", dest="single_outfile", action="store_false",
                        help="FITS: one file per input and position")
    parser.add_argument("--mode", choices=("partial", "trim", "strict"), default="partial",
                        help="cutouts reaching off the image: fill (default), trim, or fail")
    parser.add_argument("--fill-value", type=float, default=float("nan"), help="value off the image (NaN)")
    parser.add_argument("--rounding", choices=("round", "ceil", "floor"), default="round",
                        help="rounding of the cutout limits (astrocut's limit_rounding_method)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="warn and skip inputs a position misses, instead of failing")
    parser.add_argument("--allow-empty", action="store_true", help="keep all-NaN or all-zero cutouts (EMPTY=T)")
    image = parser.add_argument_group("PNG and JPEG output")
    image.add_argument("--stretch", default="asinh", help="asinh, sinh, sqrt, log, linear or squared")
    image.add_argument("--minmax-percent", metavar="LO,HI", help="percentile interval (default 0.5,99.5)")
    image.add_argument("--minmax-value", metavar="LO,HI", help="value interval")
    image.add_argument("--invert", action="store_true", help="invert the grey scale")
    image.add_argument("--colorize", action="store_true", help="one colour image from the first three inputs")
    _common.add_parallel_options(parser)
    parser.set_defaults(func=run)
    return parser


def _targets(args):
    targets = [_common.parse_sky(text, "--center") for text in args.center]
    targets += [_common.parse_pixel(text, "--pixel") for text in args.pixel]
    if args.catalog:
        targets += _common.read_targets(args.catalog)
    if not targets:
        from ..errors import InvalidParameterError

        raise InvalidParameterError("give at least one position: --center, --pixel or --catalog")
    return targets


def _pair(text, option):
    from ..errors import InvalidParameterError

    values = _common.parse_pixel(text, option)
    if not values[0] < values[1]:
        raise InvalidParameterError(f"{option}: LO must be below HI, got {text!r}")
    return values


def _hdu(text):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def run(args):
    """Run ``starpix cutout``."""
    import os

    from ..errors import InvalidParameterError

    start = time.perf_counter()
    targets = _targets(args)
    size = _common.parse_size(args.size)
    progress = _common.show_progress(args)
    if args.format == "fits":
        if args.colorize:
            raise InvalidParameterError("--colorize makes PNG or JPEG images: add --format png or jpg")
        from ..cutout import fits_cut

        with _common.parallel_executor(args) as (executor, workers):
            written = fits_cut(args.files, targets, size, hdu=_hdu(args.hdu), single_outfile=args.single_outfile,
                               cutout_prefix=args.prefix, output_dir=args.output_dir, output=args.output,
                               mode=args.mode, fill_value=args.fill_value, rounding=args.rounding,
                               allow_empty=args.allow_empty, skip_missing=args.skip_missing,
                               overwrite=args.overwrite, progress_bar=progress, executor=executor,
                               max_workers=workers)
    else:
        from ..cutout import img_cut

        if args.output is not None:
            raise InvalidParameterError("-o/--output names FITS outputs; images use --output-dir and --prefix")
        if args.jobs is not None or args.scheduler is not None:
            raise InvalidParameterError("--jobs/--scheduler run FITS cutouts (--format fits) in parallel; "
                                        f"--format {args.format} runs in this process")
        percent = _pair(args.minmax_percent, "--minmax-percent") if args.minmax_percent else (0.5, 99.5)
        value = _pair(args.minmax_value, "--minmax-value") if args.minmax_value else None
        if value is not None and not args.minmax_percent:
            percent = None
        written = img_cut(args.files, targets, size, stretch=args.stretch, minmax_percent=percent,
                          minmax_value=value, invert=args.invert, img_format=args.format,
                          colorize=args.colorize, cutout_prefix=args.prefix, output_dir=args.output_dir,
                          hdu=_hdu(args.hdu), fill_value=args.fill_value, rounding=args.rounding,
                          overwrite=args.overwrite, skip_missing=args.skip_missing)
    written = [written] if isinstance(written, (str, os.PathLike)) else list(written)
    for path in written:
        _common.say(args, f"wrote {path}")
    _common.say(args, f"{len(written)} file(s) in {time.perf_counter() - start:.2f} s")
    return 0
