"""The final drizzle by output row bands equals the serial one bit for bit, in process and on processes."""

import numpy as np
import pytest
from astropy.io import fits

from starpix.drizzle import _tiles, astrodrizzle
from starpix.errors import InvalidParameterError
from starpix.simulate import make_dithered_exposures

OPTIONS = {
    "square": {},
    "turbo rotated": {"final_kernel": "turbo", "final_pixfrac": 0.7, "final_wcs": True, "final_rot": 33.0,
                      "final_scale": 0.13},
    "point IVM": {"final_kernel": "point", "final_wht_type": "IVM"},
    "gaussian ERR": {"final_kernel": "gaussian", "final_wht_type": "ERR", "final_bits": 4096},
    "lanczos3 fill": {"final_kernel": "lanczos3", "final_fillval": -1.0, "final_units": "counts"},
}


@pytest.fixture(scope="module")
def exposures(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bands")
    files, _ = make_dithered_exposures(directory, 3, shape=(72, 56), n_chips=2, n_stars=5, n_galaxies=1, seed=2)
    return directory, files


def _same(a, b):
    for name in ("sci", "wht", "ctx"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)  # NaN equals NaN here


@pytest.mark.parametrize("case", list(OPTIONS))
def test_bands_in_process_equal_serial(exposures, tmp_path, monkeypatch, case):
    _, files = exposures
    serial = astrodrizzle(files, tmp_path / "s", in_memory=True, runfile=False, **OPTIONS[case])
    monkeypatch.setattr(_tiles, "BAND_PIXELS", 700)  # many thin bands (6 to 9 output rows)
    banded = astrodrizzle(files, tmp_path / "b", in_memory=True, runfile=False, executor="serial",
                          **OPTIONS[case])
    _same(serial, banded)
    assert serial.crmasks is not None and sum(int(m.sum()) for ms in serial.crmasks for m in ms) > 0
    assert np.count_nonzero(serial.wht) > 0.5 * serial.wht.size
    if case == "lanczos3 fill":
        assert np.any(serial.sci == -1.0 * serial.header["TEXPTIME"])  # the fill value, in counts


def test_bands_on_processes_equal_serial(exposures, tmp_path, monkeypatch):
    _, files = exposures
    # the serial run keeps its intermediates; the run on processes reuses them (only its final drizzle,
    # by bands, runs on the processes: two pools)
    serial = astrodrizzle(files, tmp_path / "s", runfile=False, driz_cr=False)
    monkeypatch.setattr(_tiles, "BAND_PIXELS", 2000)
    banded = astrodrizzle(files, tmp_path / "s", runfile=False, driz_separate=False, median=False, blot=False,
                          driz_cr=False, num_cores=2, overwrite=True)
    _same(serial, banded)
    with fits.open(tmp_path / "s_drz.fits") as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, serial.sci)
        np.testing.assert_array_equal(hdul["CTX"].data, serial.ctx[0])
    # six chips: one context bit each, every chip reaches the output
    assert serial.ctx.shape[0] == 1 and set(np.unique(serial.ctx[0] & ~0x3F)) == {0}
    assert all(np.any(serial.ctx[0] & (1 << k)) for k in range(6))


def test_band_rows_cover_the_output_once():
    for shape, workers, height in (((137, 104), 2, None), ((5, 3), 4, None), ((100, 10), 1, 7), ((1, 1), 3, None)):
        bands = _tiles.band_rows(shape, workers, height)
        rows = np.concatenate([np.arange(y0, y1 + 1) for y0, y1 in bands])
        np.testing.assert_array_equal(rows, np.arange(shape[0]))
    assert len(_tiles.band_rows((137, 104), 2)) == 4  # two per worker
    assert len(_tiles.band_rows((4096, 4096), 2)) == 4
    assert len(_tiles.band_rows((8192, 4096), 1)) == 8  # at most BAND_PIXELS output pixels each
    with pytest.raises(InvalidParameterError, match="band_height"):
        _tiles.band_rows((10, 10), 1, 0)
