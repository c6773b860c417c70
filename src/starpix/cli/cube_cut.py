"""``starpix cube cut``: target pixel files from a cube of full-frame images."""

from __future__ import annotations

from . import _common


def register(subparsers):
    """Register ``starpix cube cut``."""
    parser = _common.add_parser(
        subparsers, "cut", label="cube cut",
        help="cut target pixel files (TPFs) out of a cube",
        description="Cut TESS-style target pixel files out of a cube of full-frame images (astrocut's "
                    "cube_cut, much faster). Pixel positions are 0-based; --size is NY,NX (or one number).",
        example="  starpix cube cut s0014-1-1-cube.fits --center 250.3,2.3 --size 5\n"
                "  starpix cube cut cube.fits --catalog targets.ecsv --size 10,12 --output-dir tpfs/\n"
                "  starpix cube cut cube.fits --catalog targets.ecsv --size 10 --output-dir tpfs/ --jobs 4",
    )
    parser.add_argument("cube", metavar="CUBE", help="cube file (astrocut's CubeFactory layout)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--center", metavar="RA,DEC", help="target position on the sky (degrees or sexagesimal)")
    where.add_argument("--pixel", metavar="X,Y", help="target position in pixels (0-based; write --pixel=-3,10 for a negative X)")
    where.add_argument("--catalog", metavar="TABLE",
                       help="table of targets (ra/dec or x/y columns; ECSV, CSV, FITS)")
    parser.add_argument("--size", required=True, metavar="N|NY,NX",
                        help="cutout size: pixels, or an angle such as 2arcmin (one value: square)")
    parser.add_argument("-o", "--output", metavar="FILE", help="output file name (one target only)")
    parser.add_argument("--output-dir", default=".", metavar="DIR", help="where to write (default: .)")
    parser.add_argument("--fill-value", type=float, default=float("nan"), metavar="VALUE",
                        help="flux of cutout pixels off the image (default: nan)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="with --catalog: warn about and skip targets off the image instead of failing")
    _common.add_parallel_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Cut the TPFs and print one line per file written."""
    from ..cutout import cube_cut
    from ..errors import InvalidParameterError

    size = _common.parse_size(args.size)
    if args.catalog:
        targets = _common.read_targets(args.catalog)
    elif args.center:
        targets = _common.parse_sky(args.center, "--center")
    else:
        targets = _common.parse_pixel(args.pixel, "--pixel")
    if args.output and args.catalog:
        raise InvalidParameterError("--output names one file; with --catalog use --output-dir")
    if args.skip_missing and not args.catalog:
        raise InvalidParameterError("--skip-missing needs --catalog")
    with _common.parallel_executor(args) as (executor, workers):
        result = cube_cut(args.cube, targets, size, output=args.output, output_dir=args.output_dir,
                          fill_value=args.fill_value, overwrite=args.overwrite, skip_missing=args.skip_missing,
                          progress_bar=_common.show_progress(args), executor=executor, max_workers=workers)
    paths = result if isinstance(result, list) else [result]
    for path in paths:
        if path is not None:
            _common.say(args, path)
    return 0
