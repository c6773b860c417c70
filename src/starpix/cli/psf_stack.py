"""``starpix psf-stack``: stack PSF stamps into an extended PSF (astarithmetic ... sigclip-mean)."""

from __future__ import annotations

from . import _common
from .psf_stamp import parse_sigmaclip

EXAMPLE = """\
  starpix psf-stack stamps/*.fits -o psf.fits
  starpix psf-stack stamps/*.fits --operator sigclip-median --sigmaclip 3,0.2 --count -o psf.fits
  starpix psf-stack stamps-cube.fits -o psf.fits            # one file holding an (n, ny, nx) cube

Same numbers as Gnuastro's  astarithmetic $stamps $n 3 0.2 sigclip-mean -g1  (NaN pixels ignored)."""


def register(subparsers):
    """Register ``starpix psf-stack``."""
    parser = _common.add_parser(
        subparsers, "psf-stack",
        help="stack PSF stamps pixel by pixel with Gnuastro's sigma clipping",
        description="Per-pixel sigma-clipped mean (or median, mean, median) of stamps of the same size, "
                    "ignoring NaN pixels; Gnuastro's sigma-clip rule.",
        example=EXAMPLE,
    )
    parser.add_argument("stamps", metavar="STAMP", nargs="+", help="stamp files (or one cube file)")
    parser.add_argument("--hdu", metavar="STR", help="HDU of every stamp (default: first image HDU)")
    parser.add_argument("--operator", default="sigclip-mean",
                        choices=("sigclip-mean", "sigclip-median", "mean", "median"),
                        help="per-pixel statistic (sigclip-mean)")
    parser.add_argument("-s", "--sigmaclip", metavar="FLT,FLT", default=None,
                        help="sigma-clip multiple and tolerance, or number of clips (3,0.2; sigclip-* operators "
                             "only)")
    parser.add_argument("--count", action="store_true",
                        help="add an HDU NUMBER with the number of stamps used per pixel")
    parser.add_argument("-o", "--output", metavar="STR", required=True, help="output image")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix psf-stack``."""
    import numpy as np
    from astropy.io import fits

    from ..errors import InvalidParameterError
    from ..io import add_provenance, check_output, read_image, write_fits
    from ..stamp import stack_stamps
    from .psf_stamp import hdu_value

    if args.sigmaclip is not None and not args.operator.startswith("sigclip"):
        raise InvalidParameterError(f"--sigmaclip: only the sigclip-* operators clip; --operator is {args.operator}")
    sigmaclip = parse_sigmaclip(args.sigmaclip or "3,0.2")
    check_output(args.output, args.overwrite)
    stamps = args.stamps
    if len(stamps) == 1:
        with read_image(stamps[0], hdu_value(args.hdu)) as source:
            if len(source.shape) == 3:
                stamps = np.array(source.data)
    stacked, count = stack_stamps(stamps, args.operator, sigmaclip, hdu=hdu_value(args.hdu), return_count=True)
    header = fits.Header()
    header["NSTAMPS"] = (len(stamps), "number of stamps stacked")
    header["STACKOP"] = (args.operator, "per-pixel statistic")
    if args.operator.startswith("sigclip"):
        header["SCLIPMUL"], header["SCLIPPAR"] = sigmaclip[0], sigmaclip[1]
    add_provenance(header, args.stamps[:99])
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(stacked, header=header)]
    if args.count:
        hdus.append(fits.ImageHDU(count, name="NUMBER"))
    write_fits(fits.HDUList(hdus), args.output, overwrite=args.overwrite)
    _common.say(args, f"{args.output}: {args.operator} of {len(stamps)} stamps")
    return 0
