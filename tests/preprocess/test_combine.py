"""combine_frames against numpy/astropy on the same stack, in blocks of rows, from arrays and files."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clip

from starpix.errors import InvalidParameterError
from starpix.preprocess import combine_frames


def _stack(seed=0, n=9, shape=(30, 40)):
    rng = np.random.default_rng(seed)
    stack = 100 + rng.normal(0, 3, (n,) + shape)
    stack[2, 5, 5] = 1e4  # outliers the clipped mean rejects
    stack[4, 10, 20] = -1e4
    return stack


@pytest.mark.parametrize("memory", [256.0, 0.01])
def test_methods(memory):
    stack = _stack()
    frames = list(stack)
    np.testing.assert_allclose(combine_frames(frames, "median", max_memory_mb=memory), np.median(stack, 0),
                               rtol=1e-12)
    np.testing.assert_allclose(combine_frames(frames, "mean", max_memory_mb=memory), stack.mean(0), rtol=1e-12)
    clipped = sigma_clip(stack, sigma=3.0, maxiters=5, axis=0)
    master, count = combine_frames(frames, "sigclip-mean", max_memory_mb=memory, return_count=True)
    np.testing.assert_allclose(master, clipped.mean(axis=0).filled(np.nan), rtol=1e-12)
    np.testing.assert_array_equal(count, (~clipped.mask).sum(0))
    assert count[5, 5] == 8 and abs(master[5, 5] - 100) < 5


def test_files_nan_and_normalize(tmp_path):
    stack = _stack(1, n=5)
    stack[1, 3, 3] = np.nan
    paths = []
    for index, frame in enumerate(stack):
        path = tmp_path / f"f{index}.fits"
        fits.PrimaryHDU(frame * (index + 1)).writeto(path)
        paths.append(str(path))
    master = combine_frames(paths, "mean", normalize=True, max_memory_mb=0.01)
    normalized = np.stack([frame * (i + 1) / np.nanmedian(frame * (i + 1)) for i, frame in enumerate(stack)])
    np.testing.assert_allclose(master, np.nanmean(normalized, 0), rtol=1e-12)
    median = combine_frames(paths[:1] * 3, "median")
    np.testing.assert_allclose(median, stack[0], rtol=1e-12)
    all_nan = np.full((4, 4), np.nan)
    assert np.isnan(combine_frames([all_nan, all_nan], "median")).all()


def test_bad_input():
    with pytest.raises(InvalidParameterError, match="empty"):
        combine_frames([])
    with pytest.raises(InvalidParameterError, match="shape"):
        combine_frames([np.ones((3, 4)), np.ones((4, 3))])
    with pytest.raises(InvalidParameterError, match="method"):
        combine_frames([np.ones((3, 4))], "max")
    with pytest.raises(InvalidParameterError, match="2-D"):
        combine_frames([np.ones(3)])
