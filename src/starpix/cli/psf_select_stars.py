"""``starpix psf-select-stars``: isolated stars of a magnitude range (astscript-psf-select-stars)."""

from __future__ import annotations

from . import _common
from .psf_stamp import allow_negative_values, base_name, hdu_value, parse_float

EXAMPLE = """\
  starpix psf-select-stars image.fits --catalog=gaia.fits --magnituderange=6,10 --mindistdeg=0.02 -o stars.fits
  starpix psf-select-stars image.fits -c gaia.ecsv -m 12,18 -M 0.005 -p parallax,parallax_error -o stars.ecsv

The catalogue needs RA/Dec (--racolumn, --deccolumn, degrees) and magnitude (--field) columns; only stars on
the image's RA/Dec ranges are used.  No Gaia query is made: give the catalogue."""


def register(subparsers):
    """Register ``starpix psf-select-stars``."""
    parser = _common.add_parser(
        subparsers, "psf-select-stars",
        help="stars of a magnitude range without neighbours, for an extended PSF (astscript-psf-select-stars)",
        description="Keep the catalogue stars on the image with BRIGHT <= mag < FAINT (and a significant "
                    "parallax with -p) that have no other star with BRIGHT <= mag < FAINT+FAINTMAGDIFF within "
                    "--mindistdeg.",
        example=EXAMPLE, add_help=False,
    )
    allow_negative_values(parser)
    parser.add_argument("image", metavar="IMAGE", help="FITS image with a WCS; IMAGE[HDU] or --hdu picks the HDU")
    parser.add_argument("-h", "--hdu", metavar="STR", help="HDU of the image (default: first image HDU)")
    parser.add_argument("-c", "--catalog", metavar="STR", required=True, help="star catalogue (FITS, ECSV, CSV)")
    parser.add_argument("-r", "--racolumn", metavar="STR", default="ra", help="RA column, degrees (ra)")
    parser.add_argument("-d", "--deccolumn", metavar="STR", default="dec", help="Dec column, degrees (dec)")
    parser.add_argument("-f", "--field", metavar="STR", default="phot_g_mean_mag",
                        help="magnitude column (phot_g_mean_mag)")
    parser.add_argument("-p", "--parallaxanderrorcolumn", metavar="STR,STR",
                        help="parallax and its error: keep |parallax| >= 3 x error")
    parser.add_argument("-m", "--magnituderange", metavar="FLT,FLT", required=True, help="BRIGHT,FAINT")
    parser.add_argument("-F", "--faintmagdiff", metavar="FLT", default="4",
                        help="neighbours count down to FAINT+FAINTMAGDIFF (4)")
    parser.add_argument("-M", "--mindistdeg", metavar="FLT", default="0.016666667",
                        help="minimum distance to a neighbour, degrees (1 arcmin)")
    parser.add_argument("-Q", "--minaxisratio", metavar="FLT",
                        help="minimum axis ratio (needs --axisratiocolumn)")
    parser.add_argument("--axisratiocolumn", metavar="STR", help="catalogue column of measured axis ratios")
    parser.add_argument("-o", "--output", metavar="STR",
                        help="output table (default: <base>_psfcreateselectstar_<field>_<bright>_<faint>.fits)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix psf-select-stars``."""
    from ..errors import InvalidParameterError
    from ..io import check_output, read_image, read_table, write_table
    from ..stamp import select_stars
    from .psf_stamp import _numbers

    (bright, faint), texts = _numbers(args.magnituderange, "--magnituderange", 2, "BRIGHT,FAINT")
    if bright >= faint:
        raise InvalidParameterError(f"--magnituderange: BRIGHT must be smaller than FAINT, got "
                                    f"{args.magnituderange!r}")
    min_distance = parse_float(args.mindistdeg, "--mindistdeg", low=0)
    faint_mag_diff = parse_float(args.faintmagdiff, "--faintmagdiff", low=0)
    min_axis_ratio = None
    if args.minaxisratio is not None:
        min_axis_ratio = parse_float(args.minaxisratio, "--minaxisratio", low=0, high=1)
    parallax = None
    if args.parallaxanderrorcolumn:
        parallax = [part.strip() for part in args.parallaxanderrorcolumn.split(",")]
        if len(parallax) != 2 or not all(parallax):
            raise InvalidParameterError(f"--parallaxanderrorcolumn: expected two column names, got "
                                        f"{args.parallaxanderrorcolumn!r}")
    output = args.output or f"{base_name(args.image)}_psfcreateselectstar_{args.field}_{texts[0]}_{texts[1]}.fits"
    check_output(output, args.overwrite)
    with read_image(args.image, hdu_value(args.hdu)) as source:
        wcs = source.require_wcs()
        shape = source.shape
    catalog = read_table(args.catalog)
    try:
        stars = select_stars(catalog, (bright, faint), min_distance, magnitude_column=args.field,
                             ra_column=args.racolumn, dec_column=args.deccolumn, faint_mag_diff=faint_mag_diff,
                             parallax_columns=parallax, min_axis_ratio=min_axis_ratio,
                             axis_ratio_column=args.axisratiocolumn, wcs=wcs, shape=shape)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{args.catalog}: {exc}") from None
    counts = stars.meta.pop("select_stars_counts")
    write_table(stars, output, overwrite=args.overwrite)
    _common.say(args, f"{output}: {len(stars)} stars selected ("
                      + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counts.items()) + ")")
    return 0
