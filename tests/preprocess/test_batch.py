"""mask_cosmics_files: each file's outputs equal detect_cosmics on its pixels, on every executor."""

import os

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import InvalidParameterError, OutputExistsError
from starpix.preprocess import detect_cosmics, mask_cosmics_files


def make_frames(directory, n=3, shape=(60, 70)):
    """Frames with a noisy sky, one star and a few cosmic-ray hits (single hot pixels and short tracks)."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    paths, truths = [], []
    for i in range(n):
        image = rng.normal(200.0, 5.0, shape) + 3000 * np.exp(-((x - 30) ** 2 + (y - 25) ** 2) / (2 * 1.5**2))
        truth = np.zeros(shape, bool)
        for _ in range(4):
            cy, cx = rng.integers(5, shape[0] - 5), rng.integers(5, shape[1] - 5)
            if abs(cx - 30) < 6 and abs(cy - 25) < 6:
                continue
            truth[cy, cx:cx + 1 + i % 2] = True
        image[truth] += 2000.0
        path = os.path.join(directory, f"frame{i}.fits")
        fits.writeto(path, image.astype(np.float32))
        paths.append(path)
        truths.append(truth)
    return paths, truths


OPTIONS = dict(gain=1.0, readnoise=5.0, sigclip=4.5)


@pytest.mark.parametrize("executor", [None, "processes"])
def test_outputs_equal_detect_cosmics(tmp_path, executor):
    paths, truths = make_frames(tmp_path)
    out = tmp_path / "out"
    results = mask_cosmics_files(paths, output_dir=out, executor=executor, max_workers=2, **OPTIONS)
    assert [r.input for r in results] == paths
    for path, truth, result in zip(paths, truths, results):
        data = fits.getdata(path).astype(float)
        crmask, cleaned = detect_cosmics(data, **OPTIONS)
        mask = fits.getdata(result.mask)
        assert mask.dtype == np.uint8 and np.array_equal(mask != 0, crmask)
        assert np.array_equal(fits.getdata(result.cleaned), cleaned)
        assert result.n_pixels == int(crmask.sum()) == fits.getheader(result.mask)["CRNPIX"]
        assert np.all(crmask[truth])  # every injected hit found
    assert sorted(os.listdir(out)) == sorted(f"frame{i}_{k}.fits" for i in range(3) for k in ("clean", "crmask"))


def test_mask_only_bad_pixels_and_existing_outputs(tmp_path):
    paths, _ = make_frames(tmp_path, n=2)
    bad = np.zeros((60, 70), np.uint8)
    bad[10:20, 10:20] = 1
    bad_path = tmp_path / "bad.fits"
    fits.writeto(bad_path, bad)
    results = mask_cosmics_files(paths, output_dir=tmp_path, masks=[str(bad_path), None], write_cleaned=False,
                                 **OPTIONS)
    assert results[0].cleaned is None and os.path.exists(results[0].mask)
    crmask, _ = detect_cosmics(fits.getdata(paths[0]).astype(float), bad != 0, **OPTIONS)
    assert np.array_equal(fits.getdata(results[0].mask) != 0, crmask)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OutputExistsError, match="frame0_crmask.fits: already exists"):
        mask_cosmics_files(paths, output_dir=tmp_path, write_cleaned=False, **OPTIONS)
    assert sorted(os.listdir(tmp_path)) == before
    mask_cosmics_files(paths, output_dir=tmp_path, write_cleaned=False, overwrite=True, **OPTIONS)


def test_bad_inputs_leave_nothing(tmp_path):
    paths, _ = make_frames(tmp_path, n=2)
    out = tmp_path / "out"
    cases = [
        (dict(files=[]), InvalidParameterError, "no input files"),
        (dict(files=paths, sigclip=-1), InvalidParameterError, "sigclip"),
        (dict(files=paths, bogus=1), InvalidParameterError, "bogus"),
        (dict(files=paths, masks=[None]), InvalidParameterError, "masks"),
        (dict(files=[paths[0], paths[0]]), InvalidParameterError, "both be written"),
        (dict(files=paths, write_mask=False, write_cleaned=False), InvalidParameterError, "nothing to write"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            mask_cosmics_files(output_dir=out, **kwargs)
    # a missing second file: the first file's outputs are removed again
    with pytest.raises(Exception, match="missing.fits"):
        mask_cosmics_files([paths[0], str(tmp_path / "missing.fits")], output_dir=out)
    assert not out.exists() or os.listdir(out) == []
