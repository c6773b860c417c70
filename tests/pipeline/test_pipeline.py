"""starpix.pipeline: end to end on simulated dithered exposures, up-to-date checks, switches, bad configs."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import InputFileError, InvalidParameterError, StarpixError
from starpix.pipeline import MANIFEST, STAGES, load_config, parse_config, run_pipeline

BASE_CONFIG = """\
[pipeline]
output_dir = "out"

[inputs]
exposures = "raw/*_flt.fits"
truth = "truth.ecsv"
targets = "targets.ecsv"

[find]
fwhm = 2.5
nsigma = 5
box_size = 32

[photometry]
fwhm = 2.7
fit_shape = [5, 5]

[stamps]
n_stars = 4
width = 15
isolation = 8
normradii = [2, 5]

[report]
zoom = 60
"""


def _simulate(directory):
    from starpix.simulate import make_dithered_exposures

    os.makedirs(directory / "raw")
    files, truth = make_dithered_exposures(directory / "raw", 4, shape=(96, 96), n_stars=10, n_galaxies=1,
                                           n_cosmics=(40, 6), seed=3)
    truth["stars"].write(directory / "truth.ecsv")
    truth["stars"][:2].write(directory / "targets.ecsv")
    return files, truth


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project directory with exposures, a truth table, targets, a config, and one complete run."""
    root = tmp_path_factory.mktemp("pipeline") / "project"
    root.mkdir()
    _, truth = _simulate(root)
    (root / "job.toml").write_text(BASE_CONFIG)
    lines = []
    result = run_pipeline(root / "job.toml", echo=lines.append)
    return root, truth, result, lines


def _copy(project, tmp_path, config=None):
    root = tmp_path / "copy"
    shutil.copytree(project[0], root)
    if config is not None:
        (root / "job.toml").write_text(config)
    return root


def _manifest(root):
    return json.loads((root / "out" / MANIFEST).read_text())


def test_end_to_end_recovers_the_truth(project):
    root, truth, result, lines = project
    out = root / "out"
    assert result.ran == ["calibrate", "drizzle", "find", "photometry", "stamps", "cutouts", "report"]
    assert result.skipped == [] and result.disabled == []
    text = "\n".join(lines)
    matched = re.search(r"(\d+)/(\d+) true stars matched within 1 px", text)
    assert matched.group(1) == matched.group(2) == "10"
    median = float(re.search(r"flux_fit/flux_true: median ([0-9.]+)", text).group(1))
    assert abs(median - 1) < 0.02  # Gaussian stars through drizzle, fitted with a Gaussian of about their width
    # the drizzled image is in e-/s; the truth fluxes too
    with fits.open(out / "drizzle" / "final_drz.fits") as hdul:
        sci, wht = hdul["SCI"].data, hdul["WHT"].data
    assert sci.ndim == 2 and wht.shape == sci.shape and (wht > 0).mean() > 0.9
    # driz_cr found most of the injected cosmic-ray pixels (crmasks.fits: one HDU per exposure)
    with fits.open(out / "drizzle" / "crmasks.fits") as hdul:
        found = [np.asarray(h.data, bool) for h in hdul[1:]]
    injected = [m[0] for m in truth["cr_masks"]]
    strong = [inj & (e[0] > 1000) for inj, e in zip(injected, truth["cr_electrons"])]
    recall = sum((f & s).sum() for f, s in zip(found, strong)) / sum(s.sum() for s in strong)
    assert recall > 0.9
    for name in ("stars.ecsv", "background.fits"):
        assert (out / "find" / name).exists()
    assert (out / "photometry" / "photometry.ecsv").exists()
    assert (out / "stamps" / "extended-psf.fits").exists()
    assert len(list((out / "cutouts").glob("*.fits"))) == 2 and len(list((out / "cutouts").glob("*.png"))) == 2
    # the calibrated copies carry the DQ bits the pipeline set; the inputs are untouched
    with fits.open(out / "calibrate" / "exp1_flt.fits") as hdul, fits.open(root / "raw" / "exp1_flt.fits") as raw:
        assert np.array_equal(hdul["SCI"].data, raw["SCI"].data.astype(np.float32))
        assert (hdul["DQ"].data != 0).sum() >= (raw["DQ"].data != 0).sum()
    # no temporary directories
    assert not [name for name in os.listdir(out) if name.startswith(".")]


def test_report_references_its_plots(project):
    root, _, result, _ = project
    report = root / "out" / "report" / "report.md"
    assert result.report == str(report)
    text = report.read_text()
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    for name in ("drizzle-weight.png", "photometry-residual.png", "stamps.png", "extended-psf.png",
                 "recovered-vs-input.png"):
        assert name in plots
    for plot in plots:
        assert (report.parent / plot).exists(), plot
    assert "10/10 true stars matched" in text


def test_rerun_skips_everything(project, tmp_path):
    root = _copy(project, tmp_path)  # a moved project stays up to date
    before = _manifest(root)
    lines = []
    result = run_pipeline(root / "job.toml", echo=lines.append)
    assert result.ran == []
    assert result.skipped == ["calibrate", "drizzle", "find", "photometry", "stamps", "cutouts", "report"]
    assert sum("up to date (skipped)" in line for line in lines) == 7
    assert _manifest(root)["stages"] == before["stages"]
    # the summaries of skipped stages are still reported
    assert any("true stars matched" in line for line in result.summaries["photometry"])


def test_changing_one_parameter_reruns_that_stage_and_its_dependants(project, tmp_path):
    root = _copy(project, tmp_path, BASE_CONFIG.replace("fit_shape = [5, 5]", "fit_shape = [7, 7]"))
    before = _manifest(root)["stages"]
    result = run_pipeline(root / "job.toml")
    assert result.ran == ["photometry", "stamps", "report"]
    assert result.skipped == ["calibrate", "drizzle", "find", "cutouts"]
    after = _manifest(root)["stages"]
    assert after["find"] == before["find"] and after["cutouts"] == before["cutouts"]
    assert after["photometry"]["key"] != before["photometry"]["key"]
    assert after["photometry"]["params"]["fit_shape"] == [7, 7]


def test_changed_input_file_reruns_from_the_first_stage_reading_it(project, tmp_path):
    root = _copy(project, tmp_path)
    with fits.open(root / "raw" / "exp2_flt.fits", mode="update") as hdul:
        hdul["SCI"].data[10, 10] += 1.0
    result = run_pipeline(root / "job.toml", only=None)
    assert result.ran == ["calibrate", "drizzle", "find", "photometry", "stamps", "cutouts", "report"]


def test_missing_output_reruns_its_stage(project, tmp_path):
    root = _copy(project, tmp_path)
    os.remove(root / "out" / "cutouts" / os.listdir(root / "out" / "cutouts")[0])
    config = load_config(root / "job.toml")
    config.enabled["report"] = False
    result = run_pipeline(config)
    assert result.ran == ["cutouts"]


def test_one_target_counts_one_cutout(project, tmp_path):
    from astropy.table import QTable

    root = _copy(project, tmp_path)
    QTable.read(root / "targets.ecsv")[:1].write(root / "targets.ecsv", overwrite=True)
    result = run_pipeline(root / "job.toml", only="cutouts")
    assert result.ran == ["cutouts"]
    assert result.summaries["cutouts"][0].startswith("1 FITS cutouts")
    assert result.summaries["cutouts"][1].startswith("1 PNGs")
    assert len(os.listdir(root / "out" / "cutouts")) == 2


def test_force_and_only(project, tmp_path):
    root = _copy(project, tmp_path)
    result = run_pipeline(root / "job.toml", only="find", force=True)
    assert result.ran == ["find"]
    assert set(result.disabled) == set(STAGES) - {"find", "cube"}  # cube: no ffis
    assert result.report is None  # find ran again: the report of the earlier run is not named as current
    # find gave the same stars: photometry is still up to date
    result = run_pipeline(root / "job.toml", only="photometry")
    assert result.ran == [] and result.skipped == ["photometry"]
    assert result.report is not None and os.path.exists(result.report)


def test_stage_switches(project, tmp_path):
    config = BASE_CONFIG + "\n[stages]\ncutouts = false\nreport = false\n"
    config = config.replace("[stamps]\n", "[stamps]\nenabled = false\n")
    root = tmp_path / "fresh"
    shutil.copytree(project[0], root, ignore=shutil.ignore_patterns("out"))
    (root / "job.toml").write_text(config)
    result = run_pipeline(root / "job.toml")
    assert result.ran == ["calibrate", "drizzle", "find", "photometry"]
    assert set(result.disabled) == {"stamps", "cutouts", "report"}
    assert sorted(os.listdir(root / "out")) == sorted(["calibrate", "drizzle", "find", MANIFEST, "photometry"])
    # a stage switched off whose outputs are missing cannot feed another
    shutil.rmtree(root / "out" / "photometry")
    listing = sorted(os.listdir(root / "out"))
    config = load_config(root / "job.toml")
    config.enabled.update(photometry=False, stamps=True)
    with pytest.raises(InvalidParameterError, match=r"stage stamps needs the outputs of stage photometry"):
        run_pipeline(config)
    assert sorted(os.listdir(root / "out")) == listing


def test_executor_gives_the_same_results(project, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path / "threads"
    shutil.copytree(project[0], root, ignore=shutil.ignore_patterns("out"))
    config = load_config(root / "job.toml")
    config.enabled["report"] = False
    with ThreadPoolExecutor(2) as pool:
        run_pipeline(config, executor=pool)
    from astropy.table import QTable

    serial = QTable.read(project[0] / "out" / "photometry" / "photometry.ecsv")
    threaded = QTable.read(root / "out" / "photometry" / "photometry.ecsv")
    for column in ("x_fit", "y_fit", "flux_fit"):
        assert np.array_equal(np.asarray(serial[column]), np.asarray(threaded[column]))


def test_failed_stage_leaves_earlier_outputs_valid(project, tmp_path):
    root = _copy(project, tmp_path, BASE_CONFIG.replace("isolation = 8", "isolation = 500"))
    before = _manifest(root)["stages"]
    stamps_before = sorted(os.listdir(root / "out" / "stamps"))
    with pytest.raises(StarpixError, match=r"stage stamps: \[stamps\]: no isolated"):
        run_pipeline(root / "job.toml")
    after = _manifest(root)["stages"]
    assert after == before  # stamps' old entry and outputs are still those of the earlier run
    assert sorted(os.listdir(root / "out" / "stamps")) == stamps_before
    assert not [name for name in os.listdir(root / "out") if name.startswith(".")]
    # the earlier stages are up to date
    config = load_config(root / "job.toml")
    config.enabled.update(stamps=False, report=False)
    assert run_pipeline(config).ran == []


def test_html_report_embeds_the_plots(project, tmp_path):
    root = _copy(project, tmp_path, BASE_CONFIG.replace('output_dir = "out"',
                                                        'output_dir = "out"\nreport_format = "html"'))
    result = run_pipeline(root / "job.toml")
    assert result.ran == ["report"]
    text = (root / "out" / "report" / "report.html").read_text()
    assert text.count("data:image/png;base64,") >= 5 + 2  # plots + cutout pictures
    assert "weight map" in text


def test_image_mode_with_gridded_psf(tmp_path):
    from astropy.table import QTable

    from starpix.psf import make_gridded_psf
    from starpix.simulate import make_model_image, make_noise_image

    shape = (96, 96)
    grid = make_gridded_psf(shape, grid_shape=(2, 2), stamp_size=25)
    grid.write(tmp_path / "grid.fits")
    image, truth = make_model_image(shape, grid, 12, flux=(3e3, 3e4), min_separation=12, border_size=8, seed=2)
    image = image + make_noise_image(shape, mean=5.0, stddev=1.0, seed=2)
    fits.PrimaryHDU(image.astype(np.float32)).writeto(tmp_path / "field.fits")
    QTable(truth).write(tmp_path / "truth.ecsv")
    (tmp_path / "job.toml").write_text(
        '[inputs]\nimage = "field.fits"\npsf = "grid.fits"\ntruth = "truth.ecsv"\n'
        '[find]\nbox_size = 32\nfwhm = 2.4\n[stamps]\nenabled = false\n[report]\nzoom = 50\n')
    lines = []
    result = run_pipeline(tmp_path / "job.toml", echo=lines.append)
    assert result.ran == ["find", "photometry", "report"]
    text = "\n".join(lines)
    assert "12/12 true stars matched" in text
    median = float(re.search(r"flux_fit/flux_true: median ([0-9.]+)", text).group(1))
    assert abs(median - 1) < 5e-3
    assert "psf-grid.png" in (tmp_path / "pipeline-output" / "report" / "report.md").read_text()


def _bad(tmp_path, text):
    (tmp_path / "bad.toml").write_text(text)
    return tmp_path / "bad.toml"


@pytest.mark.parametrize("text, error, message", [
    ('[inputs]\nimage = "field.fits"\n[find]\nfwhmm = 2\n', InvalidParameterError,
     r"\[find\] fwhmm: unknown key"),
    ('[inputs]\nimage = "field.fits"\n[photometry]\nfit_shape = "5"\n', InvalidParameterError,
     r"\[photometry\] fit_shape: expected an integer or a list of two integers, got '5'"),
    ('[inputs]\nimage = "field.fits"\n[photometry]\nfit_shape = 4\n', InvalidParameterError,
     r"\[photometry\] fit_shape: sides must be odd"),
    ('[inputs]\nimage = "missing.fits"\n', InputFileError, r"\[inputs\] image: missing.fits: no such file"),
    ('[inputs]\nexposures = "raw/*.fits"\n', InputFileError, r"\[inputs\] exposures: raw/\*.fits: the wildcard"),
    ('[inputs]\nimage = "field.fits"\n[stages]\nphotometry = 1\n', InvalidParameterError,
     r"\[stages\] photometry: expected true or false, got 1"),
    ('[inputs]\nimage = "field.fits"\n[stages]\nfit = true\n', InvalidParameterError, r"\[stages\] fit: unknown stage"),
    ('[inputs]\nimage = "field.fits"\n[findd]\n', InvalidParameterError, r"\[findd\]: unknown table"),
    ('[inputs]\n', InvalidParameterError, r"\[inputs\]: give one of 'exposures'"),
    ('[inputs]\nimage = "field.fits"\n[drizzle]\nfinal_pixfrac = 0.5\n', InvalidParameterError,
     r"\[drizzle\]: drizzle parameters given but \[inputs\] has no exposures"),
    ('[inputs\n', InvalidParameterError, r"not valid TOML"),
    ('[inputs]\nimage = "field.fits"\n[find]\nroundness_range = [1, -1]\n', InvalidParameterError, r"\[find\]: "),
    ('[inputs]\nimage = "field.fits"\n[stamps]\noperator = "max"\n', InvalidParameterError,
     r"\[stamps\] operator: expected one of"),
])
def test_bad_configs_fail_before_any_output(tmp_path, text, error, message):
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(tmp_path / "field.fits")
    with pytest.raises(error, match=message):
        run_pipeline(_bad(tmp_path, text))
    assert sorted(os.listdir(tmp_path)) == ["bad.toml", "field.fits"]


def test_bad_drizzle_parameter_names_the_key(project, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"\[drizzle\] final_kernell: unknown key"):
        parse_config({"inputs": {"exposures": str(project[0] / "raw" / "*_flt.fits")},
                      "drizzle": {"final_kernell": "square"}})
    with pytest.raises(InvalidParameterError, match=r"\[drizzle\] final_pixfrac: expected a number"):
        parse_config({"inputs": {"exposures": str(project[0] / "raw" / "*_flt.fits")},
                      "drizzle": {"final_pixfrac": "x"}})
    with pytest.raises(InvalidParameterError, match=r"\[drizzle\]: .*final_kernel"):
        parse_config({"inputs": {"exposures": str(project[0] / "raw" / "*_flt.fits")},
                      "drizzle": {"final_kernel": "nope"}})


def test_missing_config_file(tmp_path):
    with pytest.raises(InputFileError, match="no such configuration file"):
        load_config(tmp_path / "none.toml")


def test_only_unknown_or_inapplicable_stage(project):
    config = load_config(project[0] / "job.toml")
    with pytest.raises(InvalidParameterError, match="--only fit: unknown stage"):
        run_pipeline(config, only="fit")
    with pytest.raises(InvalidParameterError, match=r"--only cube: .*no ffis"):
        run_pipeline(config, only="cube")


def test_cube_stage_alone(tess_ffis, tmp_path):
    files, truth = tess_ffis
    from astropy.table import QTable

    from starpix.io import celestial_wcs

    wcs = celestial_wcs(fits.getheader(files[0], 1))
    sky = wcs.pixel_to_world(110.3, 95.7)
    QTable({"ra": [sky.ra.deg], "dec": [sky.dec.deg]}).write(tmp_path / "target.ecsv")
    image = tmp_path / "img.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(image)
    (tmp_path / "job.toml").write_text(
        f'[inputs]\nimage = "img.fits"\nffis = {[str(f) for f in files]!r}\n'.replace("'", '"')
        + '[stages]\nfind = false\nphotometry = false\nstamps = false\nreport = false\n'
        '[cube]\nsector = 14\nsize = 5\ntargets = "target.ecsv"\n')
    result = run_pipeline(tmp_path / "job.toml")
    assert result.ran == ["cube"]
    out = tmp_path / "pipeline-output" / "cube"
    with fits.open(out / "cube.fits") as hdul:
        assert hdul[1].shape[2] == len(files)
        assert np.array_equal(hdul[1].section[:, :, 0, 0], fits.getdata(files[0], 1))
    tpfs = [f for f in os.listdir(out) if f != "cube.fits"]
    assert len(tpfs) == 1
    with fits.open(out / tpfs[0]) as hdul:
        assert hdul["PIXELS"].data["FLUX"].shape == (len(files), 5, 5)


def test_drizzle_list_values_and_leftovers(project, tmp_path):
    root = _copy(project, tmp_path, BASE_CONFIG + '\n[drizzle]\ncombine_nsigma = [4, 3]\n')
    config = load_config(root / "job.toml")
    assert config.params["drizzle"]["combine_nsigma"] == "4 3"
    leftover = root / "out" / ".find.tmp-12345"
    leftover.mkdir()
    (leftover / "partial.ecsv").write_text("x")
    config.enabled["report"] = False
    result = run_pipeline(config)
    assert result.ran == ["drizzle", "find", "photometry", "stamps", "cutouts"]
    assert not leftover.exists()
