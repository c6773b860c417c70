"""psf_scale_factor, subtract_psf and unite_psfs against Gnuastro's scripts, and analytic truths."""

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import InvalidParameterError
from starpix.stamp import psf_scale_factor, subtract_psf, unite_psfs

from ._gnu import need, run, write


def gaussian_psf(n=41, sigma=3.0, floor=1e-3):
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    return (np.exp(-(xx**2 + yy**2) / (2 * sigma**2)) + floor).astype(np.float32)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A noisy image with two stars made of 3.7 x PSF, a contaminating object and its segmentation."""
    rng = np.random.default_rng(3)
    psf = gaussian_psf()
    image = rng.normal(0, 0.01, (80, 90)).astype(np.float32)
    for x, y in [(30.3, 40.6), (60.8, 25.2)]:
        image += subtract_psf(np.zeros_like(image), psf, (x, y), 3.7, model_only=True)
    objects = np.zeros(image.shape, np.int32)
    clumps = np.zeros(image.shape, np.int32)
    objects[30:50, 20:42] = 1
    clumps[35:46, 25:36] = 1
    clumps[44:47, 34:37] = 2
    image[44:47, 34:37] += 5
    objects[36:52, 22:31] = 3
    image[36:52, 22:31] += 0.3 * np.arange(9)
    directory = tmp_path_factory.mktemp("scale")
    write(directory / "psf.fits", psf)
    write(directory / "img.fits", image)
    write(directory / "seg.fits", image, extra=[fits.ImageHDU(clumps, name="CLUMPS"),
                                              fits.ImageHDU(objects, name="OBJECTS")])
    return image, psf, {"clumps": clumps, "objects": objects}, directory


CASES = [((30.3, 40.6), (5, 10), ()), ((30.3, 40.6), (3, 8), ("--segment=seg.fits",)),
         ((60.8, 25.2), (0, 6), ("-s", "2,3")), ((60.8, 25.2), (5, 10), ("--segment=seg.fits",))]


@pytest.mark.parametrize("center, normradii, extra", CASES)
def test_scale_factor_matches_gnuastro(scene, center, normradii, extra):
    need("astscript-psf-scale-factor")
    image, psf, segment, directory = scene
    out = run("astscript-psf-scale-factor", "img.fits", "--psf=psf.fits", "--mode=img",
              f"--center={center[0] + 1},{center[1] + 1}", f"--normradii={normradii[0]},{normradii[1]}", "-q",
              *extra, cwd=directory)
    expected = float(out.split()[-1])  # printed with 6 significant digits
    kwargs = {}
    if "--segment=seg.fits" in extra:
        kwargs["segment"] = segment
    if "-s" in extra:
        kwargs["sigmaclip"] = (2, 3)
    got = psf_scale_factor(image, psf, center, normradii=normradii, **kwargs)
    assert abs(got - expected) <= 5e-6 * abs(expected)


def test_scale_factor_analytic():
    psf = gaussian_psf(31)
    image = np.zeros((60, 70), np.float32)
    image[10:41, 20:51] = 2.5 * psf  # PSF centre at (35, 25)
    assert psf_scale_factor(image, psf, (35, 25), normradii=(2, 8)) == pytest.approx(2.5, rel=1e-6)
    # a half-pixel shifted star, centred back: the factor is recovered closely
    shifted = subtract_psf(np.zeros((60, 70)), psf, (35.3, 24.8), 2.5, model_only=True)
    assert psf_scale_factor(shifted, psf, (35.3, 24.8), normradii=(0, 3)) == pytest.approx(2.5, rel=0.05)


@pytest.mark.parametrize("psf_shape", [(11, 13), (10, 12)])
def test_subtract_matches_gnuastro(scene, psf_shape):
    need("astscript-psf-subtract")
    directory = scene[3]
    rng = np.random.default_rng(2)
    image = rng.normal(0, 1, (40, 50)).astype(np.float32)
    psf = rng.random(psf_shape).astype(np.float32)
    psf[2, 3] = np.nan
    write(directory / "simg.fits", image)
    write(directory / "spsf.fits", psf)
    for cx, cy in [(20, 15), (3.7, 39.6)]:
        for model in (False, True):
            out = directory / "s.fits"
            run("astscript-psf-subtract", "simg.fits", "--psf=spsf.fits", "--mode=img", f"--center={cx},{cy}",
                "--scale=2.5", "-o", out, "-q", *(["--modelonly"] if model else []), cwd=directory)
            expected = fits.getdata(out)
            # Gnuastro puts the PSF's centre half a pixel up-right of --center: FITS (cx, cy) -> 0-based + 0.5
            got = subtract_psf(image, psf, (cx - 0.5, cy - 0.5), 2.5, model_only=model)
            np.testing.assert_allclose(got, expected, rtol=0, atol=5e-7)


def test_subtract_leaves_noise_only():
    rng = np.random.default_rng(7)
    psf = gaussian_psf(31, floor=0.0)  # zero at the edge, which the translation cuts (as Warp)
    noise = rng.normal(0, 0.01, (50, 60))
    star = subtract_psf(np.zeros((50, 60)), psf, (30.4, 20.7), 40.0, model_only=True)
    assert star.dtype == np.float64
    assert star.sum() == pytest.approx(40.0 * psf.sum(dtype=np.float64), rel=1e-6)  # flux conserved
    residual = subtract_psf(noise + star, psf, (30.4, 20.7), 40.0)
    np.testing.assert_allclose(residual, noise, atol=1e-10)
    # the model's centroid is the star's position
    yy, xx = np.mgrid[0:50, 0:60]
    assert (star * xx).sum() / star.sum() == pytest.approx(30.4, abs=1e-5)
    assert (star * yy).sum() / star.sum() == pytest.approx(20.7, abs=1e-5)


@pytest.mark.parametrize("outer_n, inner_shape", [(21, (11, 12)), (21, (10, 11)), (20, (9, 10)), (15, (10, 11)),
                                                  (21, (30, 32)), (20, (31, 33))])
def test_unite_matches_gnuastro(scene, outer_n, inner_shape):
    need("astscript-psf-unite")
    directory = scene[3]
    rng = np.random.default_rng(outer_n * 100 + inner_shape[0])
    outer = rng.normal(1, 0.1, (outer_n, outer_n + 2)).astype(np.float32)
    inner = rng.normal(5, 1, inner_shape).astype(np.float32)
    inner[1, 2] = np.nan
    write(directory / "uo.fits", outer)
    write(directory / "ui.fits", inner)
    for radius, q, pa, scale in [(3, 1, 0, 2.0), (4.5, 0.6, 30, 0.37)]:
        out = directory / "u.fits"
        run("astscript-psf-unite", "uo.fits", "--inner=ui.fits", f"--radius={radius}", f"--scale={scale}",
            f"--axisratio={q}", f"--positionangle={pa}", "-o", out, "-q", cwd=directory)
        expected = fits.getdata(out)
        # Gnuastro centres the junction at (n/2, n/2) 0-based; pass it to compare
        got = unite_psfs(inner, outer, radius, scale, axis_ratio=q, position_angle=pa,
                         center=(outer.shape[1] / 2, outer.shape[0] / 2))
        np.testing.assert_allclose(got, expected, rtol=3e-7, atol=0)


def test_unite_larger_inner_even_difference_fixes_gnuastro_offset(scene):
    """Gnuastro puts an inner PSF larger than the outer by an even number of pixels one pixel low."""
    need("astscript-psf-unite")
    directory = scene[3]
    outer = np.zeros((21, 21), np.float32)
    inner = np.random.default_rng(0).random((31, 31)).astype(np.float32)
    write(directory / "uo.fits", outer)
    write(directory / "ui.fits", inner)
    out = directory / "u.fits"
    run("astscript-psf-unite", "uo.fits", "--inner=ui.fits", "--radius=100", "--scale=1", "-o", out, "-q",
        cwd=directory)
    expected = fits.getdata(out)
    got = unite_psfs(inner, outer, 100, 1)
    np.testing.assert_array_equal(got, inner[5:26, 5:26])  # centre on centre
    np.testing.assert_array_equal(expected[:-1, :-1], got[1:, 1:])


def test_unite_analytic():
    outer = np.ones((21, 21))
    inner = np.full((11, 11), 3.0)
    united = unite_psfs(inner, outer, 2.0, 0.5)
    yy, xx = np.mgrid[0:21, 0:21]
    inside = np.hypot(xx - 10, yy - 10) <= 2
    assert inside.sum() == 13
    np.testing.assert_array_equal(united[inside], 1.5)
    np.testing.assert_array_equal(united[~inside], 1.0)
    # an ellipse along +y (position angle 90) of axis ratio 0.5
    united = unite_psfs(inner, outer, 4.0, 2.0, axis_ratio=0.5, position_angle=90)
    assert united[14, 10] == 6.0 and united[10, 14] == 1.0 and united[10, 12] == 6.0


def test_bad_input():
    psf = gaussian_psf(11)
    image = np.zeros((30, 30))
    with pytest.raises(InvalidParameterError, match="normradii"):
        psf_scale_factor(image, psf, (15, 15), normradii=(5, 5))
    with pytest.raises(InvalidParameterError, match="center"):
        psf_scale_factor(image, psf, (15, np.nan), normradii=(1, 5))
    with pytest.raises(InvalidParameterError, match="mode"):
        subtract_psf(image, psf, (15, 15), 1.0, mode="pix")
    with pytest.raises(InvalidParameterError, match="segment"):
        psf_scale_factor(image, psf, (15, 15), normradii=(1, 5),
                         segment={"clumps": np.zeros((3, 3)), "objects": np.zeros((3, 3))})
    with pytest.raises(InvalidParameterError, match="axis_ratio"):
        unite_psfs(psf, psf, 3, 1, axis_ratio=0)
    with pytest.raises(InvalidParameterError, match="inner"):
        unite_psfs(np.zeros(5), psf, 3, 1)
    with pytest.raises(Exception, match="WCS"):
        subtract_psf(image, psf, (150.0, 2.0), 1.0, mode="wcs")
