"""starpix radial-profile: 1-based centre, defaults as astscript-radial-profile, table and plot, bad input."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from starpix.io import read_table
from starpix.stamp import radial_profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "stamp"))
from test_batch import make_field  # noqa: E402


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return make_field(tmp_path_factory.mktemp("rpfield"))


def test_table_equals_api(cli, field, tmp_path):
    image_path, _, arrays = field
    out = tmp_path / "p.ecsv"
    status, _, err = cli("radial-profile", f"{image_path}[1]", "-c", "46.7,71.1", "-R", "8", "-m", "mean,median",
                         "-m", "sigclip-mean", "-Q", "0.7", "-p", "25", "-s", "3,0.2", "-o", out,
                         "--plot", tmp_path / "p.png")
    assert status == 0, err
    table = read_table(out)
    api = radial_profile(arrays["image"], (45.7, 70.1), 8, axis_ratio=0.7, position_angle=25,
                         measures=("mean", "median", "sigclip-mean"), sigmaclip=(3, 0.2))
    assert table.colnames == ["RADIUS", "MEAN", "MEDIAN", "SIGCLIP-MEAN"]
    for name in api.colnames:
        np.testing.assert_array_equal(np.asarray(table[name]), np.asarray(api[name]))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_defaults(cli, field, tmp_path, monkeypatch):
    image_path, _, arrays = field
    monkeypatch.chdir(tmp_path)
    assert cli("radial-profile", image_path, "-q")[0] == 0
    # default centre NAXIS/2 + 0.5 (1-based) = 51,61 here; default rmax min(x, y, X-x, Y-y) = 50
    (name,) = os.listdir(tmp_path)
    assert name == "field_radial_profile_img_51_61.fits"
    table = read_table(name)
    api = radial_profile(arrays["image"], (50.0, 60.0), 50)
    np.testing.assert_array_equal(np.asarray(table["MEAN"]), np.asarray(api["MEAN"]))
    assert len(table) == 50


def test_bad_input(cli, field, tmp_path):
    from conftest import assert_cli_errors

    image_path, _, _ = field
    out = str(tmp_path / "o.ecsv")
    existing = tmp_path / "exists.ecsv"
    existing.write_text("keep")
    cases = [
        (["radial-profile", image_path, "-c", "1", "-R", "5", "-o", out], "--center"),
        (["radial-profile", image_path, "-c", "5,5", "-R", "0", "-o", out], "--rmax"),
        (["radial-profile", image_path, "-c", "5,5", "-R", "5", "-m", "mode", "-o", out], "--measure"),
        (["radial-profile", image_path, "-c", "5,5", "-R", "5", "-Q", "2", "-o", out], "--axisratio"),
        (["radial-profile", image_path, "-c", "5,5", "-R", "5", "-o", str(existing)], "already exists"),
        (["radial-profile", image_path, "-c", "-5,-5", "-o", out], "outside the image"),
        (["radial-profile", image_path, "-c", "5,5", "-R", "5", "-o", out, "--plot", str(tmp_path / "p.xyz")],
         "--plot"),
    ]
    assert_cli_errors(cli, cases, tmp_path)
    assert existing.read_text() == "keep"


@pytest.mark.skipif(shutil.which("astscript-radial-profile") is None, reason="Gnuastro missing")
def test_against_gnuastro(cli, field, tmp_path):
    image_path, _, _ = field
    theirs, ours = tmp_path / "gnu.fits", tmp_path / "ours.fits"
    options = ["--center=46,71", "--rmax=10", "--measure=mean,median"]
    subprocess.run(["astscript-radial-profile", image_path, "-h1", *options, f"--output={theirs}", "--quiet",
                    f"--tmpdir={tmp_path / 'gt'}"], check=True, capture_output=True)
    assert cli("radial-profile", image_path, "-h1", *options, "-o", ours, "-q")[0] == 0
    with fits.open(theirs) as hdul:
        gnu = hdul[1].data
        np.testing.assert_allclose(read_table(ours)["MEAN"], gnu["MEAN"], rtol=1e-5)
        np.testing.assert_allclose(read_table(ours)["MEDIAN"], gnu["MEDIAN"], rtol=1e-5)
