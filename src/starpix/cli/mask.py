"""``starpix mask``: mask of unusable pixels (STDPipe's make_mask).

Also holds the small reading/writing helpers of the preprocessing commands
(``mask``, ``cosmics``, ``calibrate``, ``combine``)."""

from __future__ import annotations

from . import _common

EXAMPLE = """\
  starpix mask image.fits -o mask.fits
  starpix mask image.fits --saturation auto --cosmics --gain 1.6 --external bad.fits -o mask.fits
  starpix mask image.fits[SCI] --saturation 52000 -o mask.fits

Masked (excluded) pixels are 1 in the output (uint8).  Pixels outside the header's
DATASEC/TRIMSEC (FITS 1-based sections) are masked; without --saturation the header's
SATURATE keyword, if any, sets the saturation level."""

_DROP = ("XTENSION", "SIMPLE", "PCOUNT", "GCOUNT", "EXTEND", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM",
         "BUNIT")


def register(subparsers):
    """Register ``starpix mask``."""
    parser = _common.add_parser(
        subparsers, "mask",
        help="mask non-finite, out-of-DATASEC, saturated and cosmic-ray pixels",
        description="Build a mask of the pixels to exclude (1) as STDPipe's make_mask: non-finite values, "
                    "pixels outside DATASEC/TRIMSEC, saturated pixels, an external mask OR-ed in, and "
                    "optionally cosmic rays (L.A.Cosmic).",
        example=EXAMPLE,
    )
    parser.add_argument("image", metavar="IMAGE", help="FITS image; IMAGE[HDU] picks an HDU")
    parser.add_argument("--saturation", metavar="auto|VALUE",
                        help="saturation level in ADU, or 'auto' for median + 0.95 (max - median)")
    parser.add_argument("--cosmics", action="store_true", help="also mask cosmic rays (L.A.Cosmic)")
    parser.add_argument("--gain", type=float, help="electrons per ADU, for the cosmic-ray noise model")
    parser.add_argument("--external", metavar="FITS", help="external mask: non-zero pixels are masked")
    parser.add_argument("-o", "--output", required=True, help="output mask (FITS, uint8)")
    parser.set_defaults(func=run)
    return parser


def read_2d(spec, option=None):
    """(pixels as float64, header, label) of a 2-D FITS image."""
    import numpy as np

    from ..errors import InvalidParameterError
    from ..io import read_image

    with read_image(spec) as source:
        data = np.array(source.data, dtype=float)
        header = source.header.copy()
        label = source.label
    if data.ndim != 2:
        where = f"{option} {label}" if option else label
        raise InvalidParameterError(f"{where}: expected a 2-D image, got shape {data.shape}")
    return data, header, label


def read_frame(spec, shape, option):
    """A 2-D FITS image of the given shape (a clear error naming the option otherwise)."""
    from ..errors import InvalidParameterError

    data, _, label = read_2d(spec, option)
    if data.shape != shape:
        raise InvalidParameterError(f"{option} {label}: shape {data.shape} differs from the image's {shape}")
    return data


def output_header(header, inputs):
    """The input's header without structural keywords, with starpix provenance."""
    from ..io import add_provenance

    header = header.copy()
    for key in _DROP:
        header.remove(key, ignore_missing=True, remove_all=True)
    add_provenance(header, inputs)
    return header


def write_images(outputs, overwrite):
    """Write [(path, data, header), ...] as one-HDU FITS files: all or none."""
    import os

    from astropy.io import fits

    from ..errors import InvalidParameterError
    from ..io import check_output, write_fits

    paths = [os.path.abspath(path) for path, _, _ in outputs]
    if len(set(paths)) != len(paths):
        raise InvalidParameterError("the output files must differ from each other")
    for path, _, _ in outputs:
        check_output(path, overwrite)
    written = []
    try:
        for path, data, header in outputs:
            write_fits([fits.PrimaryHDU(data, header=header)], path, overwrite=overwrite)
            written.append(path)
    except BaseException:
        for path in written:
            os.remove(path)
        raise
    return written


def run(args):
    """Run ``starpix mask``."""
    import numpy as np

    from ..errors import InvalidParameterError
    from ..io import check_output
    from ..preprocess import make_mask

    check_output(args.output, args.overwrite)
    if args.gain is not None and not args.cosmics:
        raise InvalidParameterError(f"--gain {args.gain:g}: it sets the cosmic-ray noise model; give --cosmics too")
    saturation = None
    if args.saturation is not None:
        if args.saturation.strip().lower() == "auto":
            saturation = True
        else:
            try:
                saturation = float(args.saturation)
            except ValueError:
                raise InvalidParameterError(
                    f"--saturation: expected 'auto' or a number, got {args.saturation!r}") from None
    data, header, label = read_2d(args.image)
    external = read_frame(args.external, data.shape, "--external") != 0 if args.external else None
    try:
        mask = make_mask(data, header, saturation=saturation, external_mask=external, mask_cosmics=args.cosmics,
                         gain=args.gain)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{label}: {exc}") from None
    out_header = output_header(header, [p for p in (args.image, args.external) if p])
    out_header["MASKVAL"] = (1, "value of masked (excluded) pixels")
    write_images([(args.output, mask.astype(np.uint8), out_header)], args.overwrite)
    _common.say(args, f"{args.output}: {int(mask.sum())} of {mask.size} pixels masked ({100 * mask.mean():.2f}%)")
    return 0
