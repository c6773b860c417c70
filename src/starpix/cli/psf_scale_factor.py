"""``starpix psf-scale-factor``: the factor that scales a PSF to a star (astscript-psf-scale-factor)."""

from __future__ import annotations

from . import _common
from .psf_stamp import allow_negative_values, parse_normradii, parse_sigmaclip, parse_width
from .psf_subtract import add_position_options, star_position
from .psf_unite import read_array

EXAMPLE = """\
  starpix psf-scale-factor image.fits --mode=img --center=301.37,420.81 --psf=psf.fits --normradii=5,10
  starpix psf-scale-factor image.fits -O wcs -c 150.0123,2.2345 -p psf.fits -n 5,10 -S seg.fits -o factor.txt

Prints the factor (or writes it to --output).  --center is 1-based FITS pixels in img mode (as Gnuastro),
RA,Dec degrees in wcs mode; --mode defaults to img."""


def register(subparsers):
    """Register ``starpix psf-scale-factor``."""
    parser = _common.add_parser(
        subparsers, "psf-scale-factor",
        help="flux factor between a PSF and a star over a ring (astscript-psf-scale-factor)",
        description="Cut the star as a PSF stamp (masked with --segment, sub-pixel centred, not normalized) "
                    "and the PSF to the same width, and take the sigma-clipped median of star / PSF over the "
                    "ring --normradii (RMIN <= r < RMAX).",
        example=EXAMPLE, add_help=False,
    )
    allow_negative_values(parser)
    add_position_options(parser)
    parser.add_argument("-n", "--normradii", metavar="FLT,FLT", required=True, help="ring RMIN,RMAX, pixels")
    parser.add_argument("-W", "--widthinpix", metavar="INT,INT", help="stamp width (default 2*RMAX+1)")
    parser.add_argument("-S", "--segment", metavar="STR", help="segmentation file (CLUMPS and OBJECTS HDUs)")
    parser.add_argument("-s", "--sigmaclip", metavar="FLT,FLT", default="3,0.1",
                        help="sigma-clip multiple and tolerance (3,0.1 as Gnuastro's script)")
    parser.add_argument("-d", "--nocentering", action="store_true", help="no sub-pixel centring")
    parser.add_argument("-o", "--output", metavar="STR", help="text file for the factor (default: print it)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix psf-scale-factor``."""
    from ..io import atomic_output, check_output
    from ..stamp import psf_scale_factor

    normradii = parse_normradii(args.normradii)
    sigmaclip = parse_sigmaclip(args.sigmaclip)
    width = parse_width(args.widthinpix) if args.widthinpix else None
    if args.output:
        check_output(args.output, args.overwrite)
    image, header = read_array(args.image, args.hdu)
    center, wcs, _ = star_position(args, header, image.shape)
    psf, _ = read_array(args.psf, args.psfhdu, "--psf")
    segment = None
    if args.segment:
        from ..detect import read_segmentation

        segment = read_segmentation(args.segment)
    factor = psf_scale_factor(image, psf, center, normradii=normradii, mode=args.mode, wcs=wcs, width=width,
                              segment=segment, sigmaclip=sigmaclip, centering=not args.nocentering)
    text = f"{factor:.7g}"
    if args.output:
        with atomic_output(args.output, args.overwrite) as tmp:
            with open(tmp, "w") as handle:
                handle.write(text + "\n")
    else:
        print(text)
    return 0
