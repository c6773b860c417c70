"""``starpix psf-unite``: put a scaled inner PSF into the core of an outer PSF (astscript-psf-unite)."""

from __future__ import annotations

from . import _common
from .psf_stamp import allow_negative_values, base_name, hdu_value, parse_float

EXAMPLE = """\
  starpix psf-unite psf-outer.fits --inner=psf-inner.fits --radius=25 --scale=0.0123 -o psf.fits
  starpix psf-unite psf-outer.fits -i psf-inner.fits -r 25 -s 0.0123 -Q 0.9 -p 30

Options as Gnuastro's astscript-psf-unite.  The junction ellipse is centred on the outer image's central
pixel (Gnuastro 0.19 centres it half a pixel up and right, and places an inner PSF larger than the outer
one by an even number of pixels one pixel low; starpix does neither)."""


def read_array(spec, hdu, option="IMAGE"):
    """All pixels of one image HDU (``file.fits[HDU]`` or ``hdu``) and its header."""
    import numpy as np

    from ..io import read_image

    with read_image(spec, hdu_value(hdu)) as source:
        if len(source.shape) != 2:
            from ..errors import FormatError

            raise FormatError(f"{option} {source.label}: expected a 2-D image, it has shape {source.shape}")
        return np.array(source.data), source.header.copy()


def write_image(data, path, overwrite, inputs, cards=()):
    """Write ``data`` into HDU 1 after an empty primary (Gnuastro's layout), atomically."""
    from astropy.io import fits

    from ..io import add_provenance, write_fits

    header = fits.Header()
    for key, value, comment in cards:
        header[key] = (value, comment)
    add_provenance(header, inputs)
    write_fits(fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header)]), path, overwrite=overwrite)


def register(subparsers):
    """Register ``starpix psf-unite``."""
    parser = _common.add_parser(
        subparsers, "psf-unite",
        help="unite an inner and an outer PSF at a radius (astscript-psf-unite)",
        description="Translate the inner PSF onto the outer PSF's centre, multiply it by --scale and use it "
                    "inside the ellipse of --radius; the outer PSF elsewhere.",
        example=EXAMPLE, add_help=False,
    )
    allow_negative_values(parser)
    parser.add_argument("outer", metavar="OUTER", help="outer PSF image; OUTER[HDU] or --hdu picks the HDU")
    parser.add_argument("-h", "--hdu", metavar="STR", help="HDU of the outer PSF (default: first image HDU)")
    parser.add_argument("-i", "--inner", metavar="STR", required=True, help="inner PSF image")
    parser.add_argument("-I", "--innerhdu", metavar="STR", help="HDU of the inner PSF")
    parser.add_argument("-r", "--radius", metavar="FLT", required=True, help="junction radius, pixels")
    parser.add_argument("-s", "--scale", metavar="FLT", required=True, help="factor applied to the inner PSF")
    parser.add_argument("-Q", "--axisratio", metavar="FLT", default="1", help="axis ratio of the junction (1)")
    parser.add_argument("-p", "--positionangle", metavar="FLT", default="0",
                        help="position angle of the junction, degrees from +x (0)")
    parser.add_argument("-o", "--output", metavar="STR",
                        help="output image (default: <outer>_<inner>_unite.fits in the current directory)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix psf-unite``."""
    from ..io import check_output
    from ..stamp import unite_psfs

    radius = parse_float(args.radius, "--radius", low=0)
    scale = parse_float(args.scale, "--scale")
    axis_ratio = parse_float(args.axisratio, "--axisratio", low=0, high=1, low_open=True)
    position_angle = parse_float(args.positionangle, "--positionangle")
    output = args.output or f"{base_name(args.outer)}_{base_name(args.inner)}_unite.fits"
    check_output(output, args.overwrite)
    outer, _ = read_array(args.outer, args.hdu, "OUTER")
    inner, _ = read_array(args.inner, args.innerhdu, "--inner")
    united = unite_psfs(inner, outer, radius, scale, axis_ratio=axis_ratio, position_angle=position_angle)
    write_image(united, output, args.overwrite, [args.outer, args.inner],
                [("RADIUS", radius, "junction radius (pixels)"), ("SCALE", scale, "inner PSF factor")])
    _common.say(args, f"{output}: united PSF {united.shape[1]}x{united.shape[0]}")
    return 0
