"""starpix pipeline: the command line over starpix.pipeline."""

import os
import re

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

from conftest import assert_cli_errors

CONFIG = """\
[pipeline]
output_dir = "out"
[inputs]
image = "field.fits"
truth = "truth.ecsv"
[find]
fwhm = 3.0
box_size = 32
[photometry]
fwhm = 3.0
[stamps]
n_stars = 4
width = 15
isolation = 10
normradii = [2, 5]
[report]
zoom = 50
"""


@pytest.fixture
def project(tmp_path):
    from starpix.psf import GaussianPSF
    from starpix.simulate import make_model_image, make_noise_image

    shape = (80, 80)
    image, truth = make_model_image(shape, GaussianPSF(3.0), 10, flux=(2e3, 2e4), min_separation=14,
                                    border_size=10, seed=5)
    image = image + make_noise_image(shape, mean=3.0, stddev=0.5, seed=5)
    fits.PrimaryHDU(image.astype(np.float32)).writeto(tmp_path / "field.fits")
    QTable(truth).write(tmp_path / "truth.ecsv")
    (tmp_path / "job.toml").write_text(CONFIG)
    return tmp_path


def test_run_then_rerun(cli, project):
    status, out, err = cli("pipeline", str(project / "job.toml"))
    assert status == 0, err
    assert "== photometry: PSF photometry" in out
    assert "10/10 true stars matched within 1 px" in out
    assert re.search(r"4 stage\(s\) ran, 0 up to date; outputs in .*out; report .*report\.md", out)
    assert (project / "out" / "report" / "report.md").exists()
    status, out, err = cli("pipeline", str(project / "job.toml"))
    assert status == 0, err
    assert out.count("up to date (skipped)") == 4
    assert "0 stage(s) ran, 4 up to date" in out
    # the report format is a parameter of the report stage alone
    status, out, err = cli("pipeline", str(project / "job.toml"), "--report-format", "html", "--quiet")
    assert status == 0 and out == "" and err == ""
    assert (project / "out" / "report" / "report.html").exists()
    assert not (project / "out" / "report" / "report.md").exists()


def test_only_force_and_output_dir(cli, project):
    text = CONFIG + "[stages]\nreport = false\nstamps = false\n"
    (project / "job.toml").write_text(text)
    status, out, err = cli("pipeline", str(project / "job.toml"), "-o", str(project / "elsewhere"), "--jobs", "1")
    assert status == 0, err
    assert sorted(os.listdir(project / "elsewhere")) == ["find", "photometry", "pipeline-manifest.json"]
    assert not (project / "out").exists()
    status, out, err = cli("pipeline", str(project / "job.toml"), "-o", str(project / "elsewhere"), "--only",
                           "photometry", "--force")
    assert status == 0, err
    assert "== find" not in out and "1 stage(s) ran, 0 up to date" in out


def test_bad_inputs(cli, project):
    (project / "unknown.toml").write_text(CONFIG.replace("[find]\n", "[find]\nfwhmm = 2\n"))
    (project / "badtype.toml").write_text(CONFIG.replace("fwhm = 3.0\nbox", "fwhm = \"3\"\nbox"))
    (project / "missing.toml").write_text(CONFIG.replace("field.fits", "nofield.fits"))
    (project / "upstream.toml").write_text(CONFIG)
    assert_cli_errors(cli, [
        (["pipeline", str(project / "none.toml")], "none.toml: no such configuration file"),
        (["pipeline", str(project / "unknown.toml")], "[find] fwhmm: unknown key"),
        (["pipeline", str(project / "badtype.toml")], "[find] fwhm: expected a number, got '3'"),
        (["pipeline", str(project / "missing.toml")], "[inputs] image: nofield.fits: no such file"),
        (["pipeline", str(project / "upstream.toml"), "--only", "photometry"],
         "stage photometry needs the outputs of stage find"),
        (["pipeline", str(project / "job.toml"), "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"],
         "give one or the other"),
        (["pipeline", str(project / "job.toml"), "--jobs", "-1"], "--jobs: expected 0"),
    ], project)


def test_usage_errors(cli, project):
    status, out, err = cli("pipeline", str(project / "job.toml"), "--only", "fit")
    assert status == 2 and "invalid choice: 'fit'" in err
    status, out, err = cli("pipeline")
    assert status == 2


def test_help_has_an_example(cli):
    status, out, err = cli("pipeline", "--help")
    assert status == 0
    assert "starpix pipeline job.toml" in out and "--report-format" in out and "--scheduler" in out
