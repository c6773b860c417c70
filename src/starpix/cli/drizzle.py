"""``starpix drizzle``: AstroDrizzle's pipeline (static mask, sky, separate drizzle, median, blot,
cosmic rays, final drizzle) on FITS files with a celestial WCS and an exposure time."""

from __future__ import annotations

import argparse

from . import _common

EXAMPLE = """\
  starpix drizzle 'exp*_flt.fits' -o final                    # -> final_drz.fits (SCI, WHT, CTX)
  starpix drizzle @inputs.txt -o final --final-wht-type IVM   # list file: 'image [ivm]' per line
  starpix drizzle a.fits b.fits c.fits -o out --final-pixfrac 0.8 --final-scale 0.05 --final-wcs
  starpix drizzle 'exp*.fits' -o final --driz-cr-corr --no-build --in-memory --num-cores 2 --plot
  starpix drizzle 'exp*_flt.fits' -o final --scheduler tcp://head:8786   # on a Dask cluster

Parameters keep AstroDrizzle's names (underscores as dashes); booleans take --name / --no-name.
Products: ROOT_drz.fits (or _drz_sci/_wht/_ctx.fits with --no-build), ROOT_astrodrizzle.log,
intermediates beside them (_single_sci/_single_wht, ROOT_med, _sciN_blt, _sciN_crmask, _crclean)
unless --in-memory. Unlike AstroDrizzle, existing files are replaced only with --overwrite.
--jobs N is --num-cores N (give one of them); with either, or with --scheduler, the per-exposure
steps run one exposure per job and the final drizzle one band of output rows per job, with the
same result as a serial run, bit for bit."""

# (name, type, help) of every option; defaults come from starpix.drizzle.PARAMETERS
_BOOL = "bool"
OPTIONS = [
    ("general", [
        ("build", _BOOL, "one _drz.fits with SCI, WHT, CTX extensions (else _drz_sci/_wht/_ctx files)"),
        ("in_memory", _BOOL, "keep intermediate products in memory (write none)"),
        ("clean", _BOOL, "remove the intermediate products at the end"),
        ("num_cores", int, "worker processes for the per-exposure steps and the final drizzle by output "
                           "row bands (default: serial); the same as --jobs"),
        ("stepsize", int, "pixel-map grid step, pixels"),
        ("resetbits", int, "DQ bits cleared before processing (in copies)"),
        ("runfile", str, "log file (default ROOT_astrodrizzle.log; 'none' for no log)"),
        ("gain", float, "gain override (e-/unit)"), ("gnkeyword", str, "gain header keyword"),
        ("rdnoise", float, "read-noise override (e-)"), ("rnkeyword", str, "read-noise header keyword"),
        ("exptime", float, "exposure-time override (s)"), ("expkeyword", str, "exposure-time header keyword"),
    ]),
    ("1 static mask", [("static", _BOOL, "make the static mask"), ("static_sig", float, "sigmas below the mode"),
                       ("static_min_exposures", int, "exposures a pixel must be low in (AstroDrizzle: 1)")]),
    ("2 sky", [
        ("skysub", _BOOL, "subtract the sky"),
        ("skymethod", str, "localmin|globalmin|match|globalmin+match"), ("skystat", str, "median|mode|mean"),
        ("skywidth", float, "histogram bin width (sigmas)"), ("skylower", float, "lowest value used"),
        ("skyupper", float, "highest value used"), ("skyclip", int, "clipping iterations"),
        ("skylsigma", float, "lower clipping limit (sigmas)"), ("skyusigma", float, "upper clipping limit (sigmas)"),
        ("skyuser", str, "header keyword holding a sky the user already subtracted"),
        ("skyfile", str, "file of sky values to subtract: 'image value [value per chip]'"),
        ("sky_bits", str, "DQ bits ignored for the sky"), ("skymask_cat", str, "catalogue 'image mask[,mask]' "
                                                                               "(mask 0 = excluded)"),
        ("use_static", _BOOL, "leave the static-masked pixels out of the sky"),
    ]),
    ("3 separate drizzle", [
        ("driz_separate", _BOOL, "drizzle each exposure alone"), ("driz_sep_kernel", str, "kernel"),
        ("driz_sep_wt_scl", str, "exptime|expsq|a positive number"), ("driz_sep_pixfrac", float, "pixfrac"),
        ("driz_sep_fillval", str, "fill value (INDEF: NaN)"), ("driz_sep_bits", str, "DQ bits ignored"),
        ("driz_sep_wcs", _BOOL, "custom separate grid"), ("driz_sep_refimage", str, "reference image of the grid"),
        ("driz_sep_rot", float, "position angle of +y (deg E of N)"), ("driz_sep_scale", float, "arcsec/pixel"),
        ("driz_sep_outnx", int, "width"), ("driz_sep_outny", int, "height"), ("driz_sep_ra", float, "centre RA"),
        ("driz_sep_dec", float, "centre Dec"),
    ]),
    ("4 median", [
        ("median", _BOOL, "make the median"), ("median_newmasks", _BOOL, "mask low-weight pixels"),
        ("combine_maskpt", float, "weight fraction below which pixels are masked"),
        ("combine_type", str, "median|mean|minmed|imedian|imean|iminmed"),
        ("combine_nsigma", str, "minmed significances, e.g. '4 3'"), ("combine_nlow", int, "low values dropped"),
        ("combine_nhigh", int, "high values dropped"), ("combine_lthresh", float, "lower threshold"),
        ("combine_hthresh", float, "upper threshold"), ("combine_grow", int, "minmed grow radius"),
        ("combine_bufsize", float, "section size (MiB per image)"),
    ]),
    ("5 blot", [
        ("blot", _BOOL, "blot the median back"), ("blot_interp", str, "nearest|linear|poly3|poly5|sinc|lanczos3|5"),
        ("blot_sinscl", float, "sinc scale"), ("blot_addsky", _BOOL, "add the sky back"),
        ("blot_skyval", float, "sky added when --no-blot-addsky (data units)"),
    ]),
    ("6 cosmic rays", [
        ("driz_cr", _BOOL, "find cosmic rays"), ("driz_cr_corr", _BOOL, "write _crclean and _crmask files"),
        ("driz_cr_snr", str, "two thresholds, e.g. '3.5 3.0'"), ("driz_cr_grow", int, "grow box"),
        ("driz_cr_ctegrow", int, "CTE tail length"), ("driz_cr_scale", str, "derivative scales, e.g. '1.2 0.7'"),
        ("driz_cr_method", str, "starpix (AstroDrizzle's rule plus a test of positive residuals near sources; "
                                "the default) or astrodrizzle (its rule alone)"),
        ("crbit", int, "DQ bit of cosmic rays (in copies)"),
    ]),
    ("7 final drizzle", [
        ("driz_combine", _BOOL, "make the final image"), ("final_wht_type", str, "EXP|ERR|IVM"),
        ("final_kernel", str, "square|point|turbo|gaussian|lanczos3"),
        ("final_wt_scl", str, "exptime|expsq|a positive number (EXP weights only)"), ("final_pixfrac", float, "pixfrac"),
        ("final_fillval", str, "fill value (INDEF: NaN)"), ("final_bits", str, "DQ bits ignored"),
        ("final_units", str, "cps|counts"), ("final_wcs", _BOOL, "custom final grid"),
        ("final_refimage", str, "reference image of the grid"), ("final_rot", float, "position angle of +y"),
        ("final_scale", float, "arcsec/pixel"), ("final_outnx", int, "width"), ("final_outny", int, "height"),
        ("final_ra", float, "centre RA"), ("final_dec", float, "centre Dec"),
    ]),
]


def register(subparsers):
    """Register ``starpix drizzle``."""
    from ..drizzle._pipeline import PARAMETERS  # light: numpy only

    parser = _common.add_parser(
        subparsers, "drizzle",
        help="combine dithered exposures with cosmic-ray rejection (AstroDrizzle's pipeline)",
        description="AstroDrizzle's seven steps for any imager whose FITS files carry a celestial WCS and an "
                    "exposure time: static mask, sky, separate drizzle, median, blot, cosmic rays, final drizzle.",
        example=EXAMPLE,
    )
    parser.add_argument("input", nargs="+", metavar="INPUT",
                        help="FITS files, wildcards (quoted), comma-separated lists or @list files")
    parser.add_argument("-o", "--output", help="root of the products (default: input root, or 'final')")
    parser.add_argument("--plot", nargs="?", const=True, default=None, metavar="PNG",
                        help="plot the final image and weight map (default ROOT_drz.png)")
    for title, options in OPTIONS:
        group = parser.add_argument_group(title)
        for name, kind, text in options:
            flag = "--" + name.replace("_", "-")
            default = PARAMETERS[name]
            if kind == _BOOL:
                group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                   help=f"{text} (default {'yes' if default else 'no'})")
            else:
                group.add_argument(flag, dest=name, type=kind, default=None, metavar=name.split("_")[-1].upper(),
                                   help=f"{text} (default {default!r})")
    _common.add_parallel_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix drizzle``."""
    import os

    from ..drizzle import PARAMETERS, astrodrizzle
    from ..errors import InvalidParameterError

    params = {}
    for _, options in OPTIONS:
        for name, kind, _ in options:
            value = getattr(args, name)
            if kind == _BOOL:
                if value != PARAMETERS[name]:
                    params[name] = value
            elif value is not None:
                params[name] = value
    if isinstance(params.get("runfile"), str) and params["runfile"].lower() in ("none", "no", ""):
        params["runfile"] = False
    params["overwrite"] = args.overwrite
    if args.plot is not None:
        params["plot"] = args.plot
    if args.num_cores is not None and args.jobs is not None:
        raise InvalidParameterError("--jobs and --num-cores: the same option (AstroDrizzle's name is "
                                    "--num-cores); give one")
    if args.num_cores is not None and args.scheduler is not None:
        raise InvalidParameterError("--num-cores and --scheduler: give one or the other, not both")
    with _common.parallel_executor(args) as (executor, max_workers):
        if executor == "processes":  # --jobs N: AstroDrizzle's num_cores
            params["num_cores"] = max_workers or os.cpu_count() or 1
            executor = None
        result = astrodrizzle(args.input, args.output, executor=executor, **params)
    for step, seconds in result.timings.items():
        _common.say(args, f"  {step:<20s} {seconds:8.2f} s")
    for key, path in result.files.items():
        if key.startswith("final") or key in ("runfile", "plot"):
            _common.say(args, f"{path}")
    return 0
