"""``starpix pipeline``: from a set of exposures to catalogues, an extended PSF, cutouts and a report."""

from __future__ import annotations

from . import _common

STAGE_NAMES = ("calibrate", "drizzle", "find", "photometry", "stamps", "cutouts", "cube", "report")

EXAMPLE = """\
  starpix pipeline job.toml
  starpix pipeline job.toml --only photometry --force
  starpix pipeline job.toml --jobs 4 --report-format html -o results

job.toml:
  [pipeline]
  output_dir = "results"
  [inputs]
  exposures = "raw/*_flt.fits"      # or: image = "field.fits"
  truth = "truth.ecsv"              # optional: recovered-versus-input figures
  [drizzle]
  final_pixfrac = 0.8               # starpix.drizzle.astrodrizzle's parameters
  [photometry]
  fit_shape = [5, 5]

A re-run skips the stages whose parameters, inputs and outputs have not changed
(OUTPUT_DIR/pipeline-manifest.json)."""


def register(subparsers):
    """Register ``starpix pipeline``."""
    parser = _common.add_parser(
        subparsers, "pipeline",
        help="run the whole job from a TOML file: calibrate, drizzle, find, photometry, stamps, cutouts, report",
        description="Run the stages a TOML configuration file sets up: calibrate and mask the exposures, drizzle "
                    "them with cosmic-ray rejection, find stars, PSF photometry, PSF stamps and the stacked "
                    "extended PSF, cutouts of the targets in a catalogue, a cube of full-frame images and its "
                    "target pixel files, and a report with plots. Each stage is switched in the [stages] table "
                    "(or by 'enabled' in its own table) and takes the parameters of the API it calls; every key "
                    "is checked before any work starts. Each stage writes into OUTPUT_DIR/STAGE atomically.",
        example=EXAMPLE, writes=False,
    )
    parser.add_argument("config", metavar="CONFIG.toml", help="the pipeline configuration")
    parser.add_argument("-o", "--output-dir", metavar="DIR",
                        help="write the outputs here instead of [pipeline] output_dir")
    parser.add_argument("--only", metavar="STAGE", choices=STAGE_NAMES,
                        help="run this stage alone, on the outputs earlier runs left (" + ", ".join(STAGE_NAMES)
                             + ")")
    parser.add_argument("--force", action="store_true",
                        help="run the stages even when their outputs are up to date")
    parser.add_argument("--report-format", choices=("markdown", "html"),
                        help="report as Markdown with PNG files, or one HTML file with the PNGs embedded "
                             "(default: [pipeline] report_format, else markdown)")
    _common.add_parallel_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix pipeline``."""
    import os

    from ..pipeline import load_config, run_pipeline

    overrides = {}
    if args.output_dir is not None:
        overrides.setdefault("pipeline", {})["output_dir"] = os.path.abspath(args.output_dir)
    if args.report_format is not None:
        overrides.setdefault("pipeline", {})["report_format"] = args.report_format
    config = load_config(args.config, overrides=overrides)
    with _common.parallel_executor(args) as (executor, max_workers):
        result = run_pipeline(config, only=args.only, force=args.force, executor=executor,
                              max_workers=max_workers, progress_bar=_common.show_progress(args),
                              echo=None if args.quiet else print)
    if not args.quiet:
        print(f"{len(result.ran)} stage(s) ran, {len(result.skipped)} up to date; outputs in {result.output_dir}"
              + (f"; report {result.report}" if result.report else ""))
    return 0
