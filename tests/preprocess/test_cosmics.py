"""detect_cosmics against astroscrappy (same parameters, same image) and against the simulation's truth."""

import itertools

import numpy as np
import pytest
from scipy import ndimage

from preprocess._scenes import star_field
from starpix.errors import InvalidParameterError
from starpix.preprocess import _cosmics_kernels as k
from starpix.preprocess import detect_cosmics, psf_kernel


@pytest.fixture(scope="module")
def scene():
    return star_field((256, 256), seed=1)


@pytest.fixture(scope="module")
def astroscrappy():
    return pytest.importorskip("astroscrappy", reason="astroscrappy (peer tool) is not installed")


def _cores(shape, xy, radius=1.5):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    cores = np.zeros(shape, dtype=bool)
    for x, y in xy:
        cores |= (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
    return cores


OPTIONS = [
    {},
    {"sepmed": False},
    {"cleantype": "medmask"},
    {"cleantype": "idw"},
    {"fsmode": "convolve"},
    {"fsmode": "convolve", "psfmodel": "moffat", "psffwhm": 3.0},
    {"fsmode": "convolve", "psfmodel": "gaussx", "psfsize": 5},
    {"gain": 2.2, "readnoise": 3.0, "sigclip": 5.0, "objlim": 4.0},
    {"satlevel": np.inf, "niter": 2, "sigfrac": 0.5},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{a}={b}" for a, b in o.items()) or "defaults")
def test_agrees_with_astroscrappy(scene, astroscrappy, options):
    image, truth, xy, _ = scene
    options = {"satlevel": 50000.0, **options}
    exact, cleaned = detect_cosmics(image, star_guard=False, **options)
    theirs, their_clean = astroscrappy.detect_cosmics(image, **options)
    assert (exact != theirs).sum() <= 2  # in practice identical
    both = exact & theirs
    assert both.sum() > 100
    np.testing.assert_allclose(cleaned[both], their_clean[both], rtol=1e-6, atol=1e-3)
    # outside the cosmic rays the image is returned untouched
    np.testing.assert_array_equal(cleaned[~exact], image[~exact])
    # with the star guard (default): only whole groups are unflagged, >= 99.9% agreement, recall at least
    # astroscrappy's, no star core that astroscrappy leaves alone
    ours, cleaned = detect_cosmics(image, **options)
    assert not (ours & ~exact).any()
    assert (ours == theirs).mean() >= 0.999
    assert (ours & truth).sum() >= (theirs & truth).sum()
    cores = _cores(image.shape, xy)
    assert not (ours & cores & ~theirs).any()
    np.testing.assert_array_equal(cleaned[~ours], image[~ours])


@pytest.fixture(scope="module")
def sharp_scene():
    """Sharp stars (FWHM 1.6 px), whose cores astroscrappy flags, with cosmic rays on and off stars."""
    return star_field((192, 192), n_stars=110, n_single=40, n_tracks=10, fwhm=1.6, seed=11, n_on_stars=20)


def _false_groups(mask, truth, cores):
    near = ndimage.binary_dilation(truth, np.ones((3, 3), bool), iterations=2)
    labels, n = ndimage.label(mask & ~near, np.ones((3, 3), bool))
    return n, np.count_nonzero(np.unique(labels[(mask & ~near) & cores]))


def test_star_guard_sharp_stars(sharp_scene, astroscrappy):
    image, truth, xy, _ = sharp_scene
    options = {"satlevel": 50000.0, "psffwhm": 1.6}
    theirs, _ = astroscrappy.detect_cosmics(image, **options)
    exact, _ = detect_cosmics(image, star_guard=False, **options)
    np.testing.assert_array_equal(exact, theirs)
    ours, cleaned = detect_cosmics(image, **options)
    cores = _cores(image.shape, xy)
    n_theirs, cores_theirs = _false_groups(theirs, truth, cores)
    n_ours, cores_ours = _false_groups(ours, truth, cores)
    # astroscrappy flags dozens of star cores here; the guard leaves a fraction of them
    assert cores_theirs > 40
    assert cores_ours <= 0.3 * cores_theirs and n_ours < n_theirs
    # every cosmic ray astroscrappy finds is still found, those on stars included
    on_stars = truth & ndimage.binary_dilation(cores, iterations=1)
    assert on_stars.sum() >= 15
    assert (ours & truth).sum() >= (theirs & truth).sum()
    assert (ours & on_stars).sum() >= (theirs & on_stars).sum()
    # only whole groups of astroscrappy's mask are released, all of them on stars; untouched there
    assert not (ours & ~theirs).any()
    released = theirs & ~ours
    assert released.any() and (released <= ndimage.binary_dilation(cores, iterations=2)).all()
    np.testing.assert_array_equal(cleaned[released], image[released])


def test_star_guard_keeps_isolated_and_on_star_hits():
    # a bright sharp star, a 600 ADU hit on its core, an isolated hit and a track on a flat sky
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64]
    sigma = 1.6 / 2.3548
    star = 200.0 + 8000.0 * np.exp(-((xx - 20.3) ** 2 + (yy - 30.6) ** 2) / (2 * sigma**2))
    star2 = 6000.0 * np.exp(-((xx - 45.0) ** 2 + (yy - 15.0) ** 2) / (2 * sigma**2))
    image = rng.poisson(star + star2).astype(float) + rng.normal(0, 6.5, star.shape)
    image[31, 20] += 600.0
    image[50, 50] += 400.0
    image[10, 10:14] += 800.0
    exact, _ = detect_cosmics(image, psffwhm=1.6, star_guard=False)
    ours, _ = detect_cosmics(image, psffwhm=1.6)
    assert exact[31, 20] and exact[50, 50] and exact[10, 10:14].all()
    assert ours[31, 20] and ours[50, 50] and ours[10, 10:14].all()
    # the clean star's core is flagged by L.A.Cosmic and released by the guard
    assert exact[13:18, 43:48].any() and not ours[13:18, 43:48].any()


def test_user_mask_agrees(scene, astroscrappy):
    image, truth, _, _ = scene
    mask = np.zeros(image.shape, dtype=bool)
    mask[100:140, 30:60] = True
    mask[5, :] = True
    ours, _ = detect_cosmics(image, mask, satlevel=50000.0)
    theirs, _ = astroscrappy.detect_cosmics(image, mask, satlevel=50000.0)
    np.testing.assert_array_equal(ours, theirs)
    grown = ndimage.binary_dilation(mask, np.ones((3, 3), bool))
    assert not (ours & grown).any()


def test_recall_and_star_cores(scene):
    image, truth, xy, peak = scene
    crmask, cleaned = detect_cosmics(image, satlevel=50000.0)
    assert (crmask & truth).sum() / truth.sum() > 0.95
    # no star core is flagged unless a cosmic ray fell within 3 pixels of it
    cores = _cores(image.shape, xy) & ~ndimage.binary_dilation(truth, np.ones((3, 3), bool), iterations=3)
    assert not (crmask & cores).any()
    # saturated stars are masked, not flagged
    for (x, y), p in zip(xy, peak):
        if p > 50000.0:
            assert not crmask[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4].any()
    # cleaned single-pixel hits away from stars come back near the local sky (200 ADU, noise ~15)
    far = ~ndimage.binary_dilation(_cores(image.shape, xy, 8.0), iterations=2)
    isolated = truth & far & (ndimage.uniform_filter(truth.astype(float), 3) * 9 < 1.5)
    assert isolated.sum() > 20
    assert np.median(np.abs(cleaned[isolated & crmask] - 200.0)) < 20.0


def test_cleantype_median(scene):
    image, truth, _, _ = scene
    crmask, cleaned = detect_cosmics(image, satlevel=50000.0, cleantype="median", niter=1)
    # one iteration: each flagged pixel is the plain 5x5 median of the input around it
    expected = ndimage.median_filter(image, size=5, mode="constant")
    inner = crmask.copy()
    inner[:2] = inner[-2:] = False
    inner[:, :2] = inner[:, -2:] = False
    np.testing.assert_allclose(cleaned[inner], expected[inner], rtol=1e-6)
    assert (crmask & truth).sum() / truth.sum() > 0.9


def test_non_finite_pixels(scene):
    image, truth, _, _ = scene
    image = image.copy()
    image[50, 50] = np.nan
    image[60, 61] = np.inf
    crmask, cleaned = detect_cosmics(image, satlevel=50000.0)
    assert not crmask[49:52, 49:52].any() and not crmask[59:62, 60:63].any()
    assert np.isnan(cleaned[50, 50]) and np.isinf(cleaned[60, 61])
    assert (crmask & truth).sum() / truth.sum() > 0.95


def test_float32_input_keeps_dtype(scene):
    image = scene[0].astype(np.float32)
    crmask, cleaned = detect_cosmics(image, satlevel=50000.0, niter=1)
    assert cleaned.dtype == np.float32 and crmask.dtype == bool and crmask.any()


def test_psf_kernels_match_astroscrappy(astroscrappy):
    from astroscrappy import astroscrappy as module

    np.testing.assert_allclose(psf_kernel("gauss", 2.5, 7), module.gausskernel(2.5, 7), rtol=1e-6)
    np.testing.assert_allclose(psf_kernel("gaussx", 3.0, 5), module.gaussxkernel(3.0, 5), rtol=1e-6)
    np.testing.assert_allclose(psf_kernel("gaussy", 3.0, 5), module.gaussykernel(3.0, 5), rtol=1e-6)
    moffat = psf_kernel("moffat", 2.5, 7, 4.765)
    assert moffat.sum() == pytest.approx(1.0, rel=1e-6) and moffat.argmax() == 24


def test_median_networks_and_filters():
    rng = np.random.default_rng(3)
    for n in (3, 5, 7, 9):
        net = getattr(k, f"_med{n}")
        for perm in itertools.islice(itertools.permutations(range(n)), 2000):
            assert net(*perm) == n // 2
    data = rng.normal(size=(40, 50)).astype(np.float32)
    for size in (3, 5, 7, 9):
        h = size // 2
        rows = ndimage.median_filter(data, size=(1, size), mode="nearest")
        expected = ndimage.median_filter(rows, size=(size, 1), mode="nearest")
        ours = k.separable_median(data, size)
        np.testing.assert_array_equal(ours[h:-h, h:-h], expected[h:-h, h:-h])
        np.testing.assert_array_equal(ours[:h], data[:h])
        np.testing.assert_array_equal(ours[:, -h:], data[:, -h:])
    for size in (3, 5, 7):
        h = size // 2
        ours = k.full_median(data, size)
        expected = ndimage.median_filter(data, size=size)
        np.testing.assert_array_equal(ours[h:-h, h:-h], expected[h:-h, h:-h])


def test_laplacian_and_dilations():
    rng = np.random.default_rng(4)
    data = rng.uniform(0, 100, (30, 40)).astype(np.float32)
    noise = rng.uniform(1, 3, data.shape).astype(np.float32)
    sub = np.repeat(np.repeat(data.astype(float), 2, 0), 2, 1)
    lap = ndimage.convolve(sub, np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], float), mode="constant")
    expected = np.clip(lap, 0, None).reshape(30, 2, 40, 2).mean(axis=(1, 3)) / (2 * noise)
    out = np.empty_like(data)
    k.laplacian_rebin(data, noise, out)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    mask = (rng.uniform(size=(30, 40)) > 0.97).astype(np.uint8)
    out3 = np.empty_like(mask)
    k.dilate3(mask, out3)
    ref3 = ndimage.binary_dilation(mask, np.ones((3, 3), bool))
    np.testing.assert_array_equal(out3[1:-1, 1:-1].astype(bool), ref3[1:-1, 1:-1])
    out5 = np.empty_like(mask)
    k.dilate5(mask, out5)
    round5 = np.ones((5, 5), bool)
    round5[[0, 0, -1, -1], [0, -1, 0, -1]] = False
    ref5 = ndimage.binary_dilation(mask, round5)
    np.testing.assert_array_equal(out5[2:-2, 2:-2].astype(bool), ref5[2:-2, 2:-2])


@pytest.mark.parametrize("kwargs, message", [
    ({"mask": np.zeros((10, 10), bool)}, "mask has shape"),
    ({"cleantype": "mean"}, "cleantype"),
    ({"fsmode": "conv"}, "fsmode"),
    ({"fsmode": "convolve", "psfsize": 6}, "psfsize"),
    ({"fsmode": "convolve", "psfmodel": "airy"}, "psfmodel"),
    ({"niter": 0}, "niter"),
    ({"gain": -1.0}, "gain"),
    ({"sigclip": "x"}, "sigclip"),
    ({"satlevel": float("nan")}, "satlevel"),
    ({"psfmodel": "airy"}, "psfmodel"),
    ({"psffwhm": 0.0}, "psffwhm"),
])
def test_bad_parameters(kwargs, message):
    image = np.ones((20, 20))
    with pytest.raises(InvalidParameterError, match=message):
        detect_cosmics(image, **kwargs)


def test_bad_images():
    with pytest.raises(InvalidParameterError, match="2-D"):
        detect_cosmics(np.ones(100))
    with pytest.raises(InvalidParameterError, match="at least"):
        detect_cosmics(np.ones((5, 100)))
