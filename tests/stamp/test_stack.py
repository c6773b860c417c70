"""stack_stamps against astarithmetic's per-pixel stacking, and analytic truths."""

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import InvalidParameterError
from starpix.stamp import stack_stamps

from ._gnu import need, run, write


@pytest.fixture(scope="module")
def stamps(tmp_path_factory):
    rng = np.random.default_rng(5)
    cube = rng.normal(10, 1, (9, 15, 17)).astype(np.float32)
    cube[2, 3, 4] = 1000  # outlier
    cube[5, :, :3] = np.nan
    cube[7] = np.nan  # a fully NaN stamp
    cube[:, 0, 0] = np.nan  # a pixel no stamp has
    cube[:8, 1, 1] = np.nan  # a pixel one stamp has
    cube[:, 2, 2] = 5.0  # std 0
    directory = tmp_path_factory.mktemp("stack")
    names = [write(directory / f"s{i}.fits", cube[i]) for i in range(len(cube))]
    return cube, names, directory


@pytest.mark.parametrize("operator, clip", [("sigclip-mean", (3, 0.2)), ("sigclip-median", (3, 0.2)),
                                            ("mean", None), ("median", None), ("sigclip-mean", (2, 3))])
def test_matches_astarithmetic_bit_for_bit(stamps, operator, clip):
    need("astarithmetic")
    cube, names, directory = stamps
    out = directory / "o.fits"
    args = [str(v) for v in clip] if clip else []
    run("astarithmetic", *names, len(names), *args, operator, "-g1", "--wcsfile=none", "-o", out, "-q")
    expected = fits.getdata(out)
    got = stack_stamps(names, operator, clip or (3, 0.2))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[np.isfinite(got)], expected[np.isfinite(expected)])
    # the same from an array, a list of arrays and a memmap in small row blocks
    np.testing.assert_array_equal(stack_stamps(cube, operator, clip or (3, 0.2)), got)
    np.testing.assert_array_equal(stack_stamps(list(cube), operator, clip or (3, 0.2)), got)


def test_counts_and_block_reading(stamps, monkeypatch):
    from starpix.stamp import _stack

    cube = stamps[0]
    monkeypatch.setattr(_stack, "_CHUNK_VALUES", 40)  # several row blocks
    image, count = stack_stamps(cube, "mean", return_count=True)
    np.testing.assert_array_equal(count, np.isfinite(cube).sum(axis=0))
    assert count[0, 0] == 0 and np.isnan(image[0, 0])
    assert image[1, 1] == cube[8, 1, 1]
    assert image[2, 2] == 5.0
    clipped, number = stack_stamps(cube, "sigclip-mean", return_count=True)
    assert number[3, 4] == 7  # the outlier was clipped out of 8 values
    assert abs(clipped[3, 4] - np.nanmean(np.delete(cube[:, 3, 4], [2, 7]))) < 1e-5


def test_bad_input(tmp_path):
    with pytest.raises(InvalidParameterError, match="operator"):
        stack_stamps(np.zeros((2, 3, 3)), "sum")
    with pytest.raises(InvalidParameterError, match="same size"):
        stack_stamps([np.zeros((3, 3)), np.zeros((3, 4))])
    with pytest.raises(InvalidParameterError, match="3-D"):
        stack_stamps(np.zeros((3, 3)))
    with pytest.raises(InvalidParameterError, match="no stamps"):
        stack_stamps([])
    with pytest.raises(InvalidParameterError, match="sigmaclip"):
        stack_stamps(np.zeros((2, 3, 3)), sigmaclip=(3, 1.5))
