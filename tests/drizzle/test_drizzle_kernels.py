"""Drizzle kernels, pixel maps and blot: against the drizzle package, flux conservation, contexts, errors."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starpix.drizzle import Drizzle, blot, calc_pixmap, good_pixel_mask, interpret_bit_flags
from starpix.errors import InvalidParameterError

KERNELS = ["square", "point", "turbo", "gaussian", "lanczos3"]


def make_pixmap(ny, nx, rot=7.0, scale=1.1, shift=(20.3, 15.7), dist=1e-4):
    y, x = np.indices((ny, nx), float)
    t = np.deg2rad(rot)
    xc, yc = x - nx / 2, y - ny / 2
    ox = scale * (np.cos(t) * xc - np.sin(t) * yc) + dist * xc * yc + nx / 2 + shift[0]
    oy = scale * (np.sin(t) * xc + np.cos(t) * yc) + dist * xc * xc + ny / 2 + shift[1]
    return np.dstack([ox, oy])


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(1)
    data = rng.normal(10, 3, (60, 70)).astype(np.float32)
    wmap = rng.uniform(0.5, 2, data.shape).astype(np.float32)
    return data, wmap, make_pixmap(*data.shape)


def _peer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("drizzle.resample", reason="drizzle (peer tool) is not installed")


def _peer_add(peer, drz, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return drz.add_image(*args, **kwargs)


@pytest.mark.parametrize("kernel,pixfrac", [(k, p) for k in KERNELS for p in (1.0, 0.7) if k != "lanczos3" or p == 1])
def test_agrees_with_drizzle(scene, kernel, pixfrac):
    peer = _peer()
    data, wmap, pm = scene
    shape = (110, 115)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = peer.Drizzle(kernel=kernel, out_shape=shape, fillval=0.0)
    ours = Drizzle(kernel=kernel, out_shape=shape, fillval=0.0)
    for k, (exptime, units) in enumerate([(2.0, "cps"), (3.0, "counts")]):
        kw = dict(weight_map=wmap, pixfrac=pixfrac, pixel_scale_ratio=1 / 1.1, in_units=units)
        _peer_add(peer, theirs, data * (1 + k), exptime, pm + 0.37 * k, **kw)
        ours.add_image(data * (1 + k), exptime, pm + 0.37 * k, **kw)
    tol = 1e-5
    scale = np.abs(theirs.out_img).max()
    assert np.abs(ours.out_img - theirs.out_img).max() <= tol * scale
    assert np.abs(ours.out_wht - theirs.out_wht).max() <= 1e-5 * theirs.out_wht.max()
    np.testing.assert_array_equal(ours.out_ctx, theirs.out_ctx)


@pytest.mark.parametrize("kernel", ["square", "turbo", "point"])
def test_flux_conserved(scene, kernel):
    data, wmap, pm = scene
    drz = Drizzle(kernel=kernel, out_shape=(110, 115), fillval=0.0)
    drz.add_image(data, 1.0, pm, weight_map=wmap, pixfrac=0.8, pixel_scale_ratio=1 / 1.1)
    # sum over the output of mean * weight = sum of data * weight (every drop inside the output)
    total_in = np.sum(data.astype(np.float64) * wmap)
    total_out = np.sum(drz.out_img.astype(np.float64) * drz.out_wht)
    assert abs(total_out / total_in - 1) < 1e-6
    assert abs(drz.out_wht.sum() / wmap.sum() - 1) < 1e-6


def test_square_kernel_shift_exact():
    # a half-pixel shift of a constant image: interior output equals the input, weights are 1
    data = np.full((20, 20), 5.0, np.float32)
    y, x = np.indices(data.shape, float)
    drz = Drizzle(out_shape=(22, 22))
    drz.add_image(data, 10.0, np.dstack([x + 1.5, y + 1.0]))
    np.testing.assert_allclose(drz.out_img[2:20, 3:20], 5.0, rtol=1e-6)
    np.testing.assert_allclose(drz.out_wht[2:20, 3:20], 1.0, rtol=1e-6)
    assert np.isnan(drz.out_img[0, 0]) and drz.out_wht[0, 0] == 0


def test_fill_value_and_supplied_outputs():
    data = np.ones((10, 10), np.float32)
    y, x = np.indices(data.shape, float)
    drz = Drizzle(out_shape=(30, 30), fillval=-99)
    drz.add_image(data, 1.0, np.dstack([x, y]))
    assert drz.out_img[25, 25] == -99 and drz.out_img[5, 5] == 1
    out = np.full((30, 30), 7.0, np.float32)
    drz = Drizzle(out_img=out)
    drz.add_image(data, 1.0, np.dstack([x, y]))
    assert out[25, 25] == 7.0 and out[5, 5] == 1.0  # used in place, INDEF keeps untouched pixels
    with pytest.raises(InvalidParameterError, match="fillval"):
        Drizzle(out_shape=(3, 3), fillval="abc")


def test_weights_exptime_and_weight_map():
    data = np.ones((10, 10), np.float32)
    y, x = np.indices(data.shape, float)
    pm = np.dstack([x, y])
    wmap = np.ones_like(data)
    wmap[:, :5] = 0
    drz = Drizzle(out_shape=(10, 10), fillval=0)
    drz.add_image(data, 4.0, pm, weight_map=wmap, wht_scale="exptime")
    drz.add_image(3 * data, 2.0, pm, wht_scale="exptime")
    # left half: only the second image (weight 2); right: (4*1 + 2*3) / 6
    np.testing.assert_allclose(drz.out_img[:, :5], 3.0)
    np.testing.assert_allclose(drz.out_img[:, 5:], (4 + 6) / 6, rtol=1e-6)
    np.testing.assert_allclose(drz.out_wht[:, 5:], 6.0)
    assert drz.total_exptime == 6.0
    assert np.all(drz.out_ctx[0][:, :5] == 2) and np.all(drz.out_ctx[0][:, 5:] == 3)
    drz = Drizzle(out_shape=(10, 10), fillval=0)
    drz.add_image(data, 3.0, pm, wht_scale="expsq", in_units="counts")
    np.testing.assert_allclose(drz.out_wht, 9.0)
    np.testing.assert_allclose(drz.out_img, 1 / 3, rtol=1e-6)


def test_context_beyond_32_inputs():
    data = np.ones((4, 4), np.float32)
    y, x = np.indices(data.shape, float)
    drz = Drizzle(kernel="point", out_shape=(4, 40), fillval=0)
    for k in range(40):
        drz.add_image(data, 1.0, np.dstack([x + k, y]))  # input k covers columns k..k+3
    ctx = drz.out_ctx
    assert ctx.shape == (2, 4, 40) and ctx.dtype == np.int32
    for col in (0, 3, 31, 32, 35, 39):
        ids = [k for k in range(40) if k <= col <= k + 3]
        bits = [(int(ctx[k // 32, 2, col]) >> (k % 32)) & 1 for k in range(40)]
        assert [k for k in range(40) if bits[k]] == ids
    assert ctx[0, 0, 31] < 0  # bit 31 set: negative int32, as drizzle
    pre = Drizzle(out_shape=(4, 4), max_ctx_id=70)
    assert pre.out_ctx.shape == (3, 4, 4)


def test_nan_pixmap_skipped_and_subbox():
    data = np.ones((10, 10), np.float32)
    y, x = np.indices(data.shape, float)
    pm = np.dstack([x, y])
    pm[2, 3] = np.nan
    drz = Drizzle(kernel="point", out_shape=(10, 10), fillval=0)
    n = drz.add_image(data, 1.0, pm, xmin=1, xmax=8, ymin=0, ymax=4)
    assert n == 8 * 5 - 1
    assert drz.out_wht[2, 3] == 0 and drz.out_wht[4, 8] == 1 and drz.out_wht[5, 5] == 0


def test_parallel_matches_serial(scene):
    data, wmap, pm = scene
    results = []
    for nthreads in (1, 3):
        drz = Drizzle(out_shape=(110, 115))
        drz.add_image(data, 1.0, pm, weight_map=wmap, nthreads=nthreads)
        results.append((drz.out_img, drz.out_wht))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_bad_inputs(scene):
    data, wmap, pm = scene
    with pytest.raises(InvalidParameterError, match="kernel"):
        Drizzle(kernel="tophat", out_shape=(5, 5))
    with pytest.raises(InvalidParameterError, match="out_shape"):
        Drizzle()
    with pytest.raises(InvalidParameterError, match="disagree"):
        Drizzle(out_shape=(5, 5), out_wht=np.zeros((4, 5), np.float32))
    drz = Drizzle(out_shape=(50, 50))
    for pixfrac in (0, -1, 1.5, "x"):
        with pytest.raises(InvalidParameterError, match="pixfrac"):
            drz.add_image(data, 1.0, pm, pixfrac=pixfrac)
    with pytest.raises(InvalidParameterError, match="pixmap shape"):
        drz.add_image(data, 1.0, pm[:, :-1])
    with pytest.raises(InvalidParameterError, match="exptime"):
        drz.add_image(data, 0.0, pm)
    with pytest.raises(InvalidParameterError, match="in_units"):
        drz.add_image(data, 1.0, pm, in_units="electrons")
    with pytest.raises(InvalidParameterError, match="weight_map"):
        drz.add_image(data, 1.0, pm, weight_map=wmap[:-1])
    with pytest.raises(InvalidParameterError, match="xmax"):
        drz.add_image(data, 1.0, pm, xmax=500)
    with pytest.raises(InvalidParameterError, match="wht_scale"):
        drz.add_image(data, 1.0, pm, wht_scale="often")
    with pytest.raises(InvalidParameterError, match="pixfrac must be 1"):
        Drizzle(kernel="lanczos3", out_shape=(5, 5)).add_image(data, 1.0, pm, pixfrac=0.5)


# ----------------------------------------------------------------------------- pixel maps

def _sip_wcs(shape, rot, crval=(150.0, 2.0), scale=0.2):
    from starpix.simulate import make_wcs

    wcs = make_wcs(shape, center=crval, pixel_scale_arcsec=scale, rotation_deg=rot, sip=True)
    wcs.pixel_shape = shape[::-1]
    return wcs


def test_pixmap_exact_matches_drizzle_and_stepsize_close():
    utils = pytest.importorskip("drizzle.utils", reason="drizzle (peer tool) is not installed")
    w_in = _sip_wcs((300, 320), 12.0)
    w_out = _sip_wcs((400, 400), 0.0, crval=(150.0001, 2.0002), scale=0.18)
    exact = calc_pixmap(w_in, w_out)
    theirs = utils.calc_pixmap(w_in, w_out)
    np.testing.assert_allclose(exact, theirs, atol=1e-7)
    linear = calc_pixmap(w_in, w_out, stepsize=10)
    cubic = calc_pixmap(w_in, w_out, stepsize=10, interp="cubic")
    assert np.abs(linear - exact).max() < 0.02
    assert np.abs(cubic - exact).max() < 1e-3
    np.testing.assert_allclose(linear[::10, ::10], exact[::10, ::10], atol=1e-9)


def test_pixmap_errors():
    w = _sip_wcs((20, 20), 0.0)
    with pytest.raises(InvalidParameterError, match="stepsize"):
        calc_pixmap(w, w, stepsize=0)
    with pytest.raises(InvalidParameterError, match="interp"):
        calc_pixmap(w, w, stepsize=5, interp="quadratic")
    w.pixel_shape = None
    with pytest.raises(InvalidParameterError, match="shape"):
        calc_pixmap(w, w)


# ----------------------------------------------------------------------------- blot

@pytest.fixture(scope="module")
def blot_scene():
    rng = np.random.default_rng(4)
    src = rng.normal(5, 2, (80, 90)).astype(np.float32)
    src += np.add.outer(np.arange(80), np.arange(90)).astype(np.float32) * 0.1
    return src, make_pixmap(60, 70, rot=5, scale=0.97, shift=(8.3, 12.1))


@pytest.mark.parametrize("interp,tol", [("nearest", 0), ("linear", 1e-6), ("poly3", 1e-5), ("poly5", 1e-5),
                                        ("lanczos3", 2e-2), ("lanczos5", 2e-2)])
def test_blot_agrees_with_drizzle(blot_scene, interp, tol):
    peer = _peer()
    src, pm = blot_scene
    theirs = peer.blot_image(src, pm, interp=interp, fillval=-7.0, iscale=1.3)
    ours = blot(src, pm, interp=interp, fillval=-7.0, iscale=1.3)
    assert np.abs(ours - theirs).max() <= tol * np.abs(theirs).max()
    np.testing.assert_array_equal(ours == np.float32(-7.0 * 1.3) if interp.startswith("lanczos") else ours == -7,
                                  theirs == np.float32(-7.0 * 1.3) if interp.startswith("lanczos") else theirs == -7)


@pytest.mark.parametrize("interp", ["linear", "poly3", "poly5", "sinc", "lanczos3"])
def test_blot_reproduces_smooth_image(interp):
    yy, xx = np.indices((60, 60))
    ramp = (0.3 * xx + 0.2 * yy + 1.0).astype(np.float32)
    q = np.dstack(np.meshgrid(np.linspace(10, 45, 6) + 0.37, np.linspace(10, 45, 6) + 0.61))
    # Lanczos weights do not sum to one (as in drizzle): a ramp comes back within 2 %
    rtol = 2e-2 if interp == "lanczos3" else 1e-4
    np.testing.assert_allclose(blot(ramp, q, interp=interp), 0.3 * q[..., 0] + 0.2 * q[..., 1] + 1, rtol=rtol)
    # sinscl scales the sinc offsets; 1 at integer positions whatever sinscl
    integer = np.dstack(np.meshgrid([10.0, 20.0], [15.0, 30.0]))
    np.testing.assert_allclose(blot(ramp, integer, interp="sinc", sinscl=0.5), ramp[[15, 30]][:, [10, 20]])


def test_blot_errors(blot_scene):
    src, pm = blot_scene
    with pytest.raises(InvalidParameterError, match="interp"):
        blot(src, pm, interp="spline3")
    with pytest.raises(InvalidParameterError, match="pixmap"):
        blot(src, pm[..., 0])
    with pytest.raises(InvalidParameterError, match="sinscl"):
        blot(src, pm, interp="sinc", sinscl=0)


# ----------------------------------------------------------------------------- bit flags

_powers = st.lists(st.integers(0, 20).map(lambda b: 1 << b), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(_powers, st.sampled_from(["+", ",", "|", " + ", " , "]), st.booleans(), st.booleans())
def test_bit_expressions_match_astropy(flags, sep, flip, parens):
    from astropy.nddata.bitmask import interpret_bit_flags as astropy_flags

    text = sep.join(str(f) for f in flags)
    if parens:
        text = f"({text})"
    if flip:
        text = "~" + text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = astropy_flags(text)
    assert interpret_bit_flags(text) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=30), st.integers(0, 2**16 - 1), st.booleans())
def test_good_pixel_mask_matches_astropy(dq, bits, flip):
    from astropy.nddata.bitmask import bitfield_to_boolean_mask

    dq = np.array(dq, dtype=np.uint16)
    expr = f"~{bits}" if flip else bits
    expected = bitfield_to_boolean_mask(dq, ignore_flags=expr, good_mask_value=True, dtype=bool)
    np.testing.assert_array_equal(good_pixel_mask(dq, expr), expected)


def test_bit_expression_forms():
    assert interpret_bit_flags("4+8") == 12 == interpret_bit_flags("4,8") == interpret_bit_flags(12)
    assert interpret_bit_flags("~4+8") == ~12 == interpret_bit_flags("~(4+8)")
    assert interpret_bit_flags(None) is None and interpret_bit_flags("INDEF") is None
    dq = np.array([0, 4, 8, 16, 20], np.int16)
    np.testing.assert_array_equal(good_pixel_mask(dq, "4+8"), [True, True, True, False, False])
    np.testing.assert_array_equal(good_pixel_mask(dq, "~(4+8)"), [True, False, False, True, False])
    np.testing.assert_array_equal(good_pixel_mask(dq, None), [True] * 5)
    np.testing.assert_array_equal(good_pixel_mask(dq, 0), [True, False, False, False, False])


@pytest.mark.parametrize("bad", ["4+", "(4+8", "4 8", "3+4", "~", "abc", "~~4", 1.5, True, "4+(8)"])
def test_malformed_bit_expressions(bad):
    with pytest.raises(InvalidParameterError, match="bit-flag"):
        interpret_bit_flags(bad)
