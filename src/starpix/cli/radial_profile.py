"""``starpix radial-profile``: statistics in integer elliptical rings (Gnuastro's astscript-radial-profile)."""

from __future__ import annotations

import os

from . import _common
from .psf_stamp import allow_negative_values, base_name, hdu_value, parse_center, parse_float, parse_sigmaclip

EXAMPLE = """\
  starpix radial-profile image.fits --center 300.37,280.62 --rmax 30 -o profile.ecsv
  starpix radial-profile image.fits[1] -c 300,280 -R 50 -m mean,median -m sigclip-mean -Q 0.6 -p 30 \\
      -o profile.fits --plot profile.png

--center is 1-based FITS pixels (img mode) as in Gnuastro, or RA,DEC with --mode wcs; the default is the
image centre (NAXIS/2 + 0.5) and the default --rmax the largest radius whose circle stays inside the image.
Without -o the table goes to <base>_radial_profile_<mode>_<x>_<y>.fits in the current directory."""


def register(subparsers):
    """Register ``starpix radial-profile``."""
    parser = _common.add_parser(
        subparsers, "radial-profile",
        help="statistics of an image in integer elliptical rings (astscript-radial-profile)",
        description="Measure the image in rings of integer elliptical radius around a centre (ring R holds "
                    "the pixels with R <= r < R+1), as Gnuastro's astscript-radial-profile: one row per ring "
                    "0 <= R < RMAX, with the RADIUS and one column per measure.",
        example=EXAMPLE, add_help=False,
    )
    allow_negative_values(parser)
    parser.add_argument("image", metavar="IMAGE", help="FITS image; IMAGE[HDU] or --hdu picks the HDU")
    parser.add_argument("-h", "--hdu", metavar="STR", help="HDU of the image (default: the first image HDU)")
    parser.add_argument("-O", "--mode", metavar="STR", default="img", help="mode of --center: img or wcs (img)")
    parser.add_argument("-c", "--center", metavar="FLT,FLT",
                        help="centre: X,Y 1-based pixels, or RA,DEC degrees with --mode wcs (default: the "
                             "image centre)")
    parser.add_argument("-R", "--rmax", metavar="FLT", help="rings R < RMAX are measured (pixels)")
    parser.add_argument("-Q", "--axisratio", metavar="FLT", default="1", help="axis ratio of the rings (1)")
    parser.add_argument("-p", "--positionangle", metavar="FLT", default="0",
                        help="position angle of the rings, degrees from +x (0)")
    parser.add_argument("-m", "--measure", metavar="STR", action="append",
                        help="measure(s), comma-separated or repeated (default mean): mean, median, "
                             "sigclip-mean, sigclip-median, sigclip-std, sigclip-number, std, sum, maximum, "
                             "minimum, area")
    parser.add_argument("-s", "--sigmaclip", metavar="FLT,FLT",
                        help="sigma-clip multiple and tolerance of the sigclip-* measures (3,0.2)")
    parser.add_argument("-o", "--output", metavar="STR", help="output table (ECSV, CSV or FITS by extension)")
    parser.add_argument("--plot", metavar="PNG", help="also plot the profile(s) into this image file")
    parser.set_defaults(func=run)
    return parser


def _measures(args):
    from ..errors import InvalidParameterError
    from ..stamp import RADIAL_MEASURES

    names = [part.strip() for text in (args.measure or ["mean"]) for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in RADIAL_MEASURES]
    if unknown or not names:
        raise InvalidParameterError(f"--measure: unknown measure {', '.join(map(repr, unknown)) or '(none)'}; "
                                    f"expected names from {', '.join(RADIAL_MEASURES)}")
    return tuple(dict.fromkeys(names))


def _text(value):
    from ..stamp._batch import coordinate_text

    return coordinate_text(value)


def run(args):
    """Run ``starpix radial-profile``."""
    from ..errors import InvalidParameterError
    from ..io import check_output, read_image, write_table

    if args.mode not in ("img", "wcs"):
        raise InvalidParameterError(f"--mode: expected img or wcs, got {args.mode!r}")
    measures = _measures(args)
    axis_ratio = parse_float(args.axisratio, "--axisratio", low=0, high=1, low_open=True)
    position_angle = parse_float(args.positionangle, "--positionangle")
    sigmaclip = parse_sigmaclip(args.sigmaclip) if args.sigmaclip is not None else None
    rmax = parse_float(args.rmax, "--rmax", low=0, low_open=True) if args.rmax is not None else None
    center = texts = None
    if args.center is not None:
        center, texts = parse_center(args.center)
    elif args.mode == "wcs":
        raise InvalidParameterError("--mode=wcs needs --center=RA,DEC")
    if args.plot is not None:
        check_output(args.plot, args.overwrite)
    if args.output is not None:
        check_output(args.output, args.overwrite)
    with read_image(args.image, hdu_value(args.hdu)) as source:
        ny, nx = source.shape
        if center is None:
            x1, y1 = nx / 2 + 0.5, ny / 2 + 0.5             # 1-based, astscript-radial-profile's default
        elif args.mode == "img":
            x1, y1 = center
        else:
            from astropy.coordinates import SkyCoord

            from ..geometry import resolve_center

            wcs = source.require_wcs()
            (x0, y0), _ = resolve_center(SkyCoord(center[0], center[1], unit="deg", frame="icrs"), wcs,
                                         where=source.label)
            x1, y1 = x0 + 1.0, y0 + 1.0
        if rmax is None:  # the largest circle inside the image, as the script's default
            rmax = min(x1, y1, nx - x1, ny - y1)
            if rmax <= 0:
                raise InvalidParameterError(f"--center {x1:g},{y1:g} is outside the image "
                                            f"({nx}x{ny}); give --rmax")
        output = args.output
        if output is None:
            xt, yt = texts if (texts is not None and args.mode == "img") else (_text(x1), _text(y1))
            output = f"{base_name(args.image)}_radial_profile_{args.mode}_{xt}_{yt}.fits"
            check_output(output, args.overwrite)
        from ..stamp import radial_profile

        table = radial_profile(source.data, (x1 - 1.0, y1 - 1.0), rmax, axis_ratio=axis_ratio,
                               position_angle=position_angle, measures=measures, sigmaclip=sigmaclip)
    table.meta["CENTER_X"] = float(x1)
    table.meta["CENTER_Y"] = float(y1)
    table.meta["RMAX"] = float(rmax)
    if args.plot is not None:
        _plot(table, measures, args.plot, args.overwrite, os.path.basename(args.image))
    try:
        write_table(table, output, overwrite=args.overwrite)
    except BaseException:
        if args.plot is not None and os.path.exists(args.plot):
            os.remove(args.plot)
        raise
    _common.say(args, f"{output}: {len(table)} rings ({', '.join(measures)})")
    return 0


def _plot(table, measures, path, overwrite, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_output

    figure, axes = plt.subplots(figsize=(6, 4))
    radius = table["RADIUS"].value
    for name in measures:
        axes.plot(radius, table[name.upper()], marker="o", markersize=3, label=name)
    axes.set_xlabel("radius (pixels)")
    axes.set_ylabel("value")
    import numpy as np

    values = np.concatenate([np.asarray(table[name.upper()], dtype=float) for name in measures])
    values = values[np.isfinite(values)]
    if values.size and (values > 0).all():
        axes.set_yscale("log")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    from ..errors import InvalidParameterError

    kind = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    try:
        supported = figure.canvas.get_supported_filetypes()
        if kind not in supported:
            raise InvalidParameterError(f"--plot: {path}: cannot write a plot of type {kind!r}; give a name "
                                        f"ending in one of {', '.join(sorted(supported))}")
        with atomic_output(path, overwrite) as tmp:
            figure.savefig(tmp, format=kind)
    finally:
        plt.close(figure)
