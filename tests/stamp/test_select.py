"""select_stars against astscript-psf-select-stars, and a brute-force neighbour count."""

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from starpix.errors import InvalidParameterError
from starpix.stamp import select_stars

from ._gnu import need, run, write


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150, 2]
    wcs.wcs.crpix = [100, 100]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    rng = np.random.default_rng(4)
    n = 300
    ra = 150 + rng.uniform(-0.04, 0.04, n) / np.cos(np.radians(2))
    dec = 2 + rng.uniform(-0.04, 0.04, n)
    mag = rng.uniform(8, 24, n)
    # significant parallaxes or blank ones (Gnuastro 0.19 only drops the blank ones, see the docs)
    plx = rng.uniform(3, 9, n)
    plx[::7] = np.nan
    catalog = Table(dict(ra=ra, dec=dec, phot_g_mean_mag=mag, parallax=plx, parallax_error=np.full(n, 0.9)))
    directory = tmp_path_factory.mktemp("select")
    write(directory / "img.fits", np.zeros((200, 200), np.float32), header=wcs.to_header())
    catalog.write(directory / "cat.fits")
    return catalog, wcs, directory


@pytest.mark.parametrize("extra", [("-pparallax,parallax_error",), ("-F2",)])
def test_matches_gnuastro(field, extra):
    need("astscript-psf-select-stars")
    catalog, wcs, directory = field
    out = directory / "sel.fits"
    if out.exists():
        out.unlink()
    run("astscript-psf-select-stars", "img.fits", "--catalog=cat.fits", "--racolumn=ra", "--deccolumn=dec",
        "--magnituderange=12,16", "--mindistdeg=0.005", "--minaxisratio=0.9", "-o", out, "-q", *extra,
        cwd=directory)
    expected = Table.read(out)
    kwargs = {}
    if extra and extra[0].startswith("-p"):
        kwargs["parallax_columns"] = ("parallax", "parallax_error")
    if extra and extra[0].startswith("-F"):
        kwargs["faint_mag_diff"] = 2.0
    got = select_stars(catalog, (12, 16), 0.005, wcs=wcs, shape=(200, 200), **kwargs)
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose(got["ra"], expected["ra"], rtol=0, atol=1e-11)
    np.testing.assert_allclose(got["phot_g_mean_mag"], expected["phot_g_mean_mag"], rtol=0, atol=1e-11)


def test_brute_force_pixel_mode():
    rng = np.random.default_rng(9)
    n = 400
    table = Table(dict(x=rng.uniform(0, 100, n), y=rng.uniform(0, 100, n), mag=rng.uniform(10, 20, n)))
    got = select_stars(table, (11, 15), 4.0, magnitude_column="mag", x_column="x", y_column="y",
                       faint_mag_diff=3, shape=(90, 100))
    x, y, mag = (np.asarray(table[c]) for c in ("x", "y", "mag"))
    inside = (x < 99.5) & (y < 89.5) & (mag >= 11) & (mag < 18)
    keep = []
    for i in np.flatnonzero(inside & (mag < 15)):
        distance = np.hypot(x[inside] - x[i], y[inside] - y[i])
        if (distance <= 4.0).sum() < 2:
            keep.append(i)
    keep = sorted(keep, key=lambda i: mag[i])
    np.testing.assert_array_equal(got["mag"], mag[keep])
    assert np.all(np.diff(got["mag"]) >= 0)


def test_parallax_and_axis_ratio_filters():
    table = Table(dict(ra=[10.0, 10.1, 10.2, 10.3], dec=[0.0, 0.0, 0.0, 0.0], g=[12.0, 13.0, 14.0, 15.0],
                       p=[5.0, 0.5, np.nan, -4.0], pe=[1.0, 1.0, 1.0, 1.0], q=[0.95, 0.99, 0.99, 0.5]))
    got = select_stars(table, (10, 16), 0.01, magnitude_column="g", parallax_columns=("p", "pe"))
    assert list(got["g"]) == [12.0, 15.0]
    got = select_stars(table, (10, 16), 0.01, magnitude_column="g", min_axis_ratio=0.9, axis_ratio_column="q")
    assert list(got["g"]) == [12.0, 13.0, 14.0]


def test_bad_input(field):
    catalog, wcs, _ = field
    with pytest.raises(InvalidParameterError, match="magnitude_range"):
        select_stars(catalog, (18, 12))
    with pytest.raises(InvalidParameterError, match="no column 'gmag'"):
        select_stars(catalog, (12, 18), magnitude_column="gmag")
    with pytest.raises(InvalidParameterError, match="axis_ratio_column"):
        select_stars(catalog, (12, 18), min_axis_ratio=0.9)
    with pytest.raises(InvalidParameterError, match="no star"):
        select_stars(Table(dict(ra=[10.0], dec=[10.0], phot_g_mean_mag=[14.0])), (12, 18), wcs=wcs,
                     shape=(200, 200))
