"""One command for the whole job: exposures to catalogues, stamps, an extended PSF, cutouts and a report.

A TOML file names the inputs and sets each stage's parameters (with the names
of the API the stage calls)::

    [pipeline]
    output_dir = "results"            # relative to this file
    report_format = "markdown"        # or "html"

    [inputs]
    exposures = ["raw/*_flt.fits"]    # or: image = "field.fits"
    psf = "psf-grid.fits"             # gridded PSF; else a Gaussian of [photometry] fwhm
    truth = "truth.ecsv"              # optional: ra, dec (or x_0, y_0) and flux
    targets = "targets.ecsv"          # optional: ra, dec (or x, y) for cutouts

    [stages]                          # every stage on by default
    cutouts = false

    [drizzle]                         # starpix.drizzle.astrodrizzle's parameters
    final_pixfrac = 0.8

    [photometry]
    fit_shape = [5, 5]

Stages, in order: ``calibrate`` (calibrate and mask the exposures),
``drizzle`` (AstroDrizzle with cosmic-ray rejection), ``find`` (background and
star finding), ``photometry`` (PSF photometry), ``stamps`` (PSF stamps and the
stacked extended PSF), ``cutouts`` (the targets' FITS and PNG cutouts),
``cube`` (a cube of full-frame images and target pixel files), ``report``.
Each writes into ``OUTPUT_DIR/STAGE/``; a re-run skips the stages whose
parameters, inputs and outputs have not changed (``pipeline-manifest.json``).

- :func:`load_config` — read and check a configuration file.
- :func:`run_pipeline` — run it: returns a :class:`PipelineResult`.
"""

from ._config import STAGES, PipelineConfig, load_config, parse_config
from ._run import MANIFEST, PipelineResult, run_pipeline

__all__ = ["STAGES", "PipelineConfig", "load_config", "parse_config", "run_pipeline", "PipelineResult", "MANIFEST"]
