"""``starpix psf-subtract``: subtract a scaled PSF at a star's position (astscript-psf-subtract)."""

from __future__ import annotations

from . import _common
from .psf_stamp import allow_negative_values, base_name, parse_center, parse_float
from .psf_unite import read_array, write_image

EXAMPLE = """\
  starpix psf-subtract image.fits --mode=img --center=301.37,420.81 --psf=psf.fits --scale=12.3 -o sub.fits
  starpix psf-subtract image.fits -O wcs -c 150.0123,2.2345 -p psf.fits -s 12.3 --modelonly -o model.fits

--center is 1-based FITS pixels in img mode (as Gnuastro), RA,Dec degrees in wcs mode.  The PSF's centre is
put on the star; Gnuastro 0.19 puts it half a pixel up and right of --center."""


def add_position_options(parser):
    """-h/--hdu, -p/--psf, -P/--psfhdu, -O/--mode, -c/--center (shared with psf-scale-factor)."""
    parser.add_argument("image", metavar="IMAGE", help="FITS image; IMAGE[HDU] or --hdu picks the HDU")
    parser.add_argument("-h", "--hdu", metavar="STR", help="HDU of the image (default: first image HDU)")
    parser.add_argument("-p", "--psf", metavar="STR", required=True, help="PSF image")
    parser.add_argument("-P", "--psfhdu", metavar="STR", help="HDU of the PSF image")
    parser.add_argument("-O", "--mode", metavar="STR", default="img", choices=("img", "wcs"),
                        help="'img' (1-based FITS pixels, default) or 'wcs' (RA,Dec degrees)")
    parser.add_argument("-c", "--center", metavar="FLT,FLT", required=True, help="the star's position")


def star_position(args, header, shape):
    """0-based (x, y) in img mode, (ra, dec) in wcs mode, and the WCS (or None); plus the strings typed."""
    from ..io import celestial_wcs

    values, texts = parse_center(args.center)
    if args.mode == "img":
        return (values[0] - 1.0, values[1] - 1.0), None, texts
    wcs = celestial_wcs(header, path=args.image, required=True)
    return values, wcs, texts


def register(subparsers):
    """Register ``starpix psf-subtract``."""
    parser = _common.add_parser(
        subparsers, "psf-subtract",
        help="subtract a scaled PSF placed at a star's sub-pixel position (astscript-psf-subtract)",
        description="Multiply the PSF by --scale, translate it onto the star with flux-conserving pixel "
                    "mixing and subtract it from the image (or write the model with --modelonly).",
        example=EXAMPLE, add_help=False,
    )
    allow_negative_values(parser)
    add_position_options(parser)
    parser.add_argument("-s", "--scale", metavar="FLT", required=True, help="flux factor of the PSF")
    parser.add_argument("-m", "--modelonly", action="store_true", help="write the model star, not the residual")
    parser.add_argument("-o", "--output", metavar="STR",
                        help="output image (default: <base>_subtracted_<x>_<y>.fits or <base>_model_<x>_<y>.fits)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix psf-subtract``."""
    from ..io import check_output
    from ..stamp import subtract_psf

    scale = parse_float(args.scale, "--scale")
    image, header = read_array(args.image, args.hdu)
    center, wcs, texts = star_position(args, header, image.shape)
    kind = "model" if args.modelonly else "subtracted"
    output = args.output or f"{base_name(args.image)}_{kind}_{texts[0]}_{texts[1]}.fits"
    check_output(output, args.overwrite)
    psf, _ = read_array(args.psf, args.psfhdu, "--psf")
    result = subtract_psf(image, psf, center, scale, mode=args.mode, wcs=wcs, model_only=args.modelonly)
    write_image(result, output, args.overwrite, [args.image, args.psf],
                [("SCALE", scale, "PSF flux factor"), ("MODEL", bool(args.modelonly), "image is the model")])
    _common.say(args, f"{output}: PSF x {scale:g} {'modelled' if args.modelonly else 'subtracted'} "
                      f"at {texts[0]},{texts[1]}")
    return 0
