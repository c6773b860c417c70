"""``starpix stack``: reproject images onto one celestial grid and combine them (reproject / SWarp)."""

from __future__ import annotations

from . import _common

EXAMPLE = """\
  starpix stack exp*.fits -o stack.fits
  starpix stack exp*.fits --method median --reference ref.fits -o stack.fits
  starpix stack exp*.fits --method sigclip-mean --reproject exact --background-match -o stack.fits
  starpix stack exp*.fits --method median --jobs 4 --tile-size 512 -o stack.fits

Without --reference the output grid is a north-up TAN grid covering every input at the finest
input pixel scale.  The output holds the coadd (primary HDU, with its WCS) and a WEIGHT extension
(summed weights; for --method median, the number of images covering each pixel).  With --jobs or
--scheduler the output is combined by tiles of --tile-size full-width rows on worker processes or a
Dask cluster (every worker must see the input files); the result is identical to the serial run."""

METHODS = ("mean", "median", "sigclip-mean", "sum")
REPROJECT = ("interp", "exact", "drizzle")
ORDERS = ("nearest", "bilinear", "bicubic")


def register(subparsers):
    """Register ``starpix stack``."""
    parser = _common.add_parser(
        subparsers, "stack",
        help="reproject images onto one WCS grid and coadd them (mean, median, clipped mean, sum)",
        description="Reproject FITS images with celestial WCSs onto a common grid (interpolation, exact "
                    "pixel overlap or drizzle) and combine them in bounded memory, optionally matching "
                    "their backgrounds first.",
        example=EXAMPLE,
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="FITS images; FILE[HDU] picks an HDU")
    parser.add_argument("-o", "--output", required=True, help="output FITS file")
    parser.add_argument("--method", default="mean", metavar="METHOD",
                        help=f"combination: {', '.join(METHODS)} (mean)")
    parser.add_argument("--reference", metavar="FITS",
                        help="take the output grid (WCS and shape) from this image; default: a grid covering all")
    parser.add_argument("--reproject", default="interp", metavar="METHOD",
                        help=f"reprojection: {', '.join(REPROJECT)} (interp)")
    parser.add_argument("--order", metavar="ORDER",
                        help=f"interpolation order of --reproject interp only: {', '.join(ORDERS)} (bilinear)")
    parser.add_argument("--background-match", action="store_true",
                        help="subtract least-squares additive offsets found from the overlaps")
    parser.add_argument("--weights", metavar="W1,W2,...", help="one weight per input image (default 1)")
    parser.add_argument("--sigma", type=float, default=3.0, help="clipping limit of sigclip-mean (3)")
    parser.add_argument("--memory-limit", type=float, default=256.0, metavar="MB",
                        help="MB of reprojected data held at once by median/clipping (256; per tile job)")
    group = _common.add_parallel_options(parser)
    group.add_argument("--tile-size", type=int, metavar="ROWS",
                       help="output rows per tile (combine by tiles, even without --jobs); default with "
                            "--jobs/--scheduler: about four tiles per worker, at least 64 rows")
    parser.set_defaults(func=run)
    return parser


def _choice(value, allowed, option):
    from ..errors import InvalidParameterError

    if value not in allowed:
        raise InvalidParameterError(f"{option}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def run(args):
    """Run ``starpix stack``."""
    import numpy as np
    from astropy.io import fits

    from ..errors import InvalidParameterError
    from ..io import add_provenance, check_output, read_image, write_fits
    from ..reproject import coadd, optimal_wcs

    check_output(args.output, args.overwrite)
    if not args.files:
        raise InvalidParameterError("FILE: no input images given")
    _choice(args.method, METHODS, "--method")
    _choice(args.reproject, REPROJECT, "--reproject")
    if args.order is not None and args.reproject != "interp":
        raise InvalidParameterError(f"--order: applies to --reproject interp only, got --reproject {args.reproject}")
    args.order = _choice(args.order or "bilinear", ORDERS, "--order")
    if not args.memory_limit > 0:
        raise InvalidParameterError(f"--memory-limit: must be positive, got {args.memory_limit}")
    if args.tile_size is not None and args.tile_size < 1:
        raise InvalidParameterError(f"--tile-size: expected a positive number of rows, got {args.tile_size}")
    weights = None
    if args.weights:
        try:
            weights = [float(part) for part in args.weights.split(",")]
        except ValueError:
            raise InvalidParameterError(f"--weights: expected numbers separated by commas, got {args.weights!r}") \
                from None
        if len(weights) != len(args.files):
            raise InvalidParameterError(f"--weights: expected {len(args.files)} values (one per image), "
                                        f"got {len(weights)} in {args.weights!r}")
    if args.reference:
        with read_image(args.reference) as source:
            wcs_out = source.require_wcs()
            shape_out = source.shape[-2:]
    else:
        wcs_out, shape_out = optimal_wcs(args.files)
    with _common.parallel_executor(args) as (executor, max_workers):
        image, weight = coadd(args.files, wcs_out, shape_out, method=args.method, weights=weights,
                              background_match=args.background_match, reproject_method=args.reproject,
                              order=args.order, sigma=args.sigma, memory_limit=int(args.memory_limit * 2**20),
                              progress_bar=_common.show_progress(args), executor=executor,
                              max_workers=max_workers, tile_size=args.tile_size)
    header = wcs_out.to_header(relax=True)
    header["COMBINET"] = (args.method, "combination of the reprojected images")
    header["RPMETHOD"] = (args.reproject, "reprojection method")
    if args.reproject == "interp":
        header["RPORDER"] = (args.order, "interpolation order")
    header["BKGMATCH"] = (bool(args.background_match), "additive background offsets matched")
    header["NCOMBINE"] = (len(args.files), "number of input images")
    add_provenance(header, args.files)
    wheader = wcs_out.to_header(relax=True)
    wheader["WTYPE"] = ("COVERAGE" if args.method == "median" else "WEIGHT",
                        "number of images" if args.method == "median" else "summed weights")
    hdus = [fits.PrimaryHDU(image.astype(np.float32), header=header),
            fits.ImageHDU(weight.astype(np.float32), header=wheader, name="WEIGHT")]
    write_fits(hdus, args.output, overwrite=args.overwrite)
    covered = int(np.count_nonzero(weight > 0))
    _common.say(args, f"{args.output}: {len(args.files)} images, {image.shape[0]}x{image.shape[1]} pixels "
                      f"({covered} covered), method {args.method}")
    return 0
