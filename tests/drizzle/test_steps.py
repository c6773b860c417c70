"""AstroDrizzle's steps as array functions: static mask, sky, median (minmed), quick_deriv, driz_cr."""

import numpy as np
import pytest
from scipy.signal import convolve2d

from starpix.drizzle import (
    SkyChip,
    combine_stack,
    compute_sky,
    driz_cr,
    image_stats,
    quick_deriv,
    sky_statistic,
    static_mask,
    weight_masks,
)
from starpix.drizzle._cr import _convolve_same
from starpix.errors import InvalidParameterError, NoOverlapError


def planes(values, shape=(3, 4)):
    return [np.full(shape, v, np.float32) for v in values]


# ---------------------------------------------------------------- numcombine


def test_median_probes():
    imgs = planes([1, 2, 4, 10])
    assert np.all(combine_stack(imgs, combine_type="median") == 3.0)
    assert np.all(combine_stack(imgs, combine_type="median", nhigh=1) == 2.0)
    masks = [np.zeros((3, 4), bool) for _ in imgs]
    masks[1][:] = True  # value 2 masked -> (1, 4, 10), nhigh=1 -> (1, 4)
    assert np.all(combine_stack(imgs, masks, combine_type="median", nhigh=1) == 2.5)
    assert np.all(combine_stack(imgs, combine_type="median", nlow=1, nhigh=1) == 3.0)
    assert np.all(combine_stack(imgs, combine_type="mean") == 4.25)
    assert np.all(combine_stack(imgs, combine_type="mean", nlow=1) == pytest.approx(16 / 3))
    # 3-D input is the same as a list
    np.testing.assert_array_equal(combine_stack(np.stack(imgs), combine_type="median"), 3.0)


def test_median_rejection_shrinks_when_too_few_unmasked():
    imgs = planes([5, 7, 9])
    masks = [np.zeros((3, 4), bool) for _ in imgs]
    masks[0][0, 0] = masks[1][0, 0] = True  # only 9 left at (0, 0); nlow=nhigh=1 cannot apply
    out = combine_stack(imgs, masks, combine_type="median", nlow=1, nhigh=1)
    assert out[0, 0] == 9.0
    assert out[1, 1] == 7.0


def test_all_masked_fallbacks():
    imgs = planes([0, 3, 6])
    masks = [np.ones((3, 4), bool) for _ in imgs]
    masks[2][2, 3] = False  # one unmasked pixel: 6
    for ctype in ("median", "mean"):
        out = combine_stack(imgs, masks, combine_type=ctype)
        assert out[0, 0] == 0.0 and out[2, 3] == 6.0
    # imedian / imean: the first non-zero value of the stack where everything is masked
    for ctype in ("imedian", "imean"):
        out = combine_stack(imgs, masks, combine_type=ctype)
        assert out[0, 0] == 3.0 and out[2, 3] == 6.0


def test_thresholds_drop_values():
    imgs = planes([1, 2, 4, 10, 50])
    assert np.all(combine_stack(imgs, combine_type="median", hthresh=10) == 2.0)  # 10 and 50 out (>=): median(1, 2, 4)
    assert np.all(combine_stack(imgs, combine_type="mean", lthresh=2, hthresh=11) == pytest.approx(16 / 3))


def test_median_matches_bruteforce_random():
    rng = np.random.default_rng(5)
    stack = rng.normal(0, 1, (6, 9, 11)).astype(np.float32)
    masks = rng.random(stack.shape) < 0.3
    out = combine_stack(stack, masks, combine_type="median", nlow=1, nhigh=1)
    for y in range(9):
        for x in range(11):
            v = np.sort(stack[~masks[:, y, x], y, x].astype(np.float64))
            nl, nh = 1, 1
            while v.size and nl + nh >= v.size:
                nh, nl = max(nh - 1, 0), max(nl - 1, 0)
            ref = np.median(v[nl:v.size - nh]) if v.size else 0.0
            assert out[y, x] == pytest.approx(ref, abs=1e-6)


# ---------------------------------------------------------------- minmed


def minmed_scene():
    """Four images of rate 1.0, t = 100 s, so W = 400 and rms = 20 e-: the minimum
    wins alone below 1 - 4 * 20 / 400 = 0.8 and next to a winner below 0.85."""
    imgs = planes([1, 1, 1, 1], shape=(9, 9))
    imgs[2][2, 2] = 0.7  # minimum wins outright
    imgs[2][2, 3] = 0.84  # wins only because its neighbour did (nsigma2 = 3)
    imgs[2][6, 6] = 0.84  # alone: median kept
    imgs[0][4, 4] = 30.0  # a cosmic ray: rejected by nhigh=1
    return imgs


def test_minmed_picks_minimum_only_beyond_nsigma():
    out = combine_stack(minmed_scene(), combine_type="minmed", exptime=100.0, readnoise=0.0)
    assert out.dtype == np.float32
    assert out[2, 2] == pytest.approx(0.7)
    assert out[2, 3] == pytest.approx(0.84)
    assert out[6, 6] == 1.0
    assert out[4, 4] == 1.0
    # grow=0: no second threshold
    out0 = combine_stack(minmed_scene(), combine_type="minmed", exptime=100.0, grow=0)
    assert out0[2, 2] == pytest.approx(0.7) and out0[2, 3] == 1.0
    # read noise and sky raise the rms: rn = 20 e- per image -> rms^2 = 400 + 4*400 -> thresholds move
    out_rn = combine_stack(minmed_scene(), combine_type="minmed", exptime=100.0, readnoise=20.0)
    assert out_rn[2, 2] == 1.0  # 0.7 no longer 4 sigma below (needs < 1 - 4*44.7/400 = 0.553)
    out_bg = combine_stack(minmed_scene(), combine_type="minmed", exptime=100.0, background=100.0 * 1200 / 400)
    # bkgd = sum(w * sky / t) = 4 * 100 * 3 = 1200 -> rms = 40 -> minimum needs < 0.6
    assert out_bg[2, 2] == 1.0
    # explicit weight images equal to the exposure time give the same result
    w = [np.full((9, 9), 100.0, np.float32)] * 4
    np.testing.assert_array_equal(combine_stack(minmed_scene(), combine_type="minmed", weights=w, exptime=100.0),
                                  out)


def test_minmed_masks_and_two_images():
    imgs = planes([1.0, 2.0, 3.0], shape=(5, 5))
    masks = [np.zeros((5, 5), bool) for _ in imgs]
    for m in masks:
        m[0, 0] = True  # all masked -> 0
    masks[0][1, 1] = masks[1][1, 1] = True  # one unmasked image -> its value
    out = combine_stack(imgs, masks, combine_type="minmed", exptime=1.0)
    assert out[0, 0] == 0.0
    assert out[1, 1] == 3.0
    assert out[3, 3] == 1.5  # median with nhigh=1 of (1, 2, 3); minimum 1 not 4 sigma low at rate 1.5*3
    two = combine_stack(planes([1.0, 2.0], shape=(5, 5)), combine_type="minmed", exptime=1e4)
    # W = 2e4: rms = sqrt(1.5 * 2e4) = 173; min*W = 2e4 < 3e4 - 4*173 -> minimum
    assert np.all(two == 1.0)
    two_rate = combine_stack(planes([1.0, 1.01], shape=(5, 5)), combine_type="minmed", exptime=1.0)
    assert np.allclose(two_rate, 1.005)  # mean of two


def test_sections_equal_whole_image():
    rng = np.random.default_rng(2)
    stack = rng.normal(5, 1, (5, 40, 16)).astype(np.float32)
    stack[1, 10:13, 4:7] = 0.5  # low blob, the minimum wins with its grown neighbours
    masks = rng.random(stack.shape) < 0.1
    kw = dict(combine_type="minmed", exptime=[100, 120, 90, 100, 110], readnoise=3.0, background=20.0)
    whole = combine_stack(stack, masks, **kw)
    for rows in (3, 5, 7, 13):
        part = combine_stack(stack, masks, bufsize=rows * 16 * 4 / 2**20, **kw)
        np.testing.assert_array_equal(part, whole)
    med = combine_stack(stack, masks, combine_type="median", nhigh=1)
    np.testing.assert_array_equal(combine_stack(stack, masks, combine_type="median", nhigh=1,
                                                bufsize=4 * 16 * 4 / 2**20), med)


def test_weight_masks():
    w = np.full((4, 5), 10.0, np.float32)
    w[0, :] = 0.0  # not counted in the mean
    w[1, 0] = 2.0  # mean of w >= 1e-8: (14*10 + 2)/15 = 9.47; 0.3*mean = 2.84 -> masked
    w[1, 1] = 3.0  # kept
    (m,) = weight_masks([w], maskpt=0.3)
    assert m.dtype == bool
    assert m[0].all() and m[1, 0] and not m[1, 1] and not m[2:].any()
    (empty,) = weight_masks([np.zeros((3, 3))])
    assert not empty.any()


# ---------------------------------------------------------------- static mask


def test_static_mask_flags_low_column_in_one_exposure():
    rng = np.random.default_rng(11)
    chips = [rng.normal(100, 3, (64, 64)).astype(np.float32) for _ in range(3)]
    chips[1][:, 20] = 60.0  # bad column, low in one exposure only
    chips[2][5:8, 40:43] += 500  # a star: high, never flagged
    bad = static_mask(chips)
    assert bad[:, 20].all()
    assert not bad[5:8, 40:43].any()
    others = np.delete(bad, 20, axis=1)
    assert others.sum() <= 3  # 4 sigma low: ~3e-5 per pixel per exposure
    # the mask argument keeps known-bad pixels out of the statistics; result unchanged here
    masks = [np.zeros((64, 64), bool) for _ in chips]
    masks[1][:, 20] = True
    assert static_mask(chips, masks)[:, 20].all()
    # a flat image flags nothing
    assert not static_mask([np.full((8, 8), 5.0)]).any()


# ---------------------------------------------------------------- sky


def sky_field(level, sigma, shape=(200, 200), seed=0, nstars=60):
    rng = np.random.default_rng(seed)
    img = rng.normal(level, sigma, shape)
    y, x = np.indices(shape)
    for _ in range(nstars):
        cx, cy, f = rng.uniform(0, shape[1]), rng.uniform(0, shape[0]), rng.uniform(50, 2000)
        img += f * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 1.5**2)) / (2 * np.pi * 1.5**2)
    return img.astype(np.float32)


@pytest.mark.parametrize("skystat", ["median", "mode", "mean", "midpt"])
def test_sky_statistic_recovers_gaussian_sky(skystat):
    img = sky_field(100.0, 5.0)
    sky = sky_statistic(img, skystat=skystat)
    assert abs(sky - 100.0) < 0.5 * 5.0
    # unclipped mean is pulled up by the stars, the clipped statistics are not
    assert img.mean() > sky


def test_image_stats_clipping_and_mask():
    v = np.concatenate([np.linspace(-1, 1, 1001), [1e6]]).astype(np.float32)
    st = image_stats(v, nclip=1, lsig=3, usig=3)
    assert st["npix"] == 1001 and st["max"] == 1.0 and abs(st["mean"]) < 1e-6
    assert st["stddev"] == pytest.approx(np.std(np.linspace(-1, 1, 1001), ddof=1), rel=1e-5)
    assert st["median"] == pytest.approx(0.0, abs=1e-6)
    mask = np.zeros(v.shape, bool)
    mask[-1] = True
    assert sky_statistic(v, mask, skystat="mean", skyclip=0) == pytest.approx(0.0, abs=1e-6)
    # skylower / skyupper restrict the values used
    assert sky_statistic(v, skystat="mean", skyclip=0, skylower=0.0, skyupper=1.0) == pytest.approx(0.5, abs=1e-3)


def test_compute_sky_localmin_globalmin_and_user():
    e1 = [SkyChip(sky_field(100, 4, (80, 80), 1, 10)), SkyChip(sky_field(90, 4, (80, 80), 2, 10))]
    e2 = [SkyChip(sky_field(120, 4, (80, 80), 3, 10)), SkyChip(sky_field(125, 4, (80, 80), 4, 10))]
    loc = compute_sky([e1, e2], skymethod="localmin")
    assert abs(loc[0] - 90) < 2 and abs(loc[1] - 120) < 2
    glob = compute_sky([e1, e2], skymethod="globalmin")
    assert glob[0] == glob[1] == loc[0]
    assert compute_sky([e1, e2], skyuser=[1.0, 2.0]) == [1.0, 2.0]
    # per unit area: a chip with pixels twice the reference area
    e3 = [SkyChip(sky_field(100, 4, (80, 80), 5, 10), pixel_area=2.0)]
    assert abs(compute_sky([e3])[0] - 50) < 1


def shifted_pixmap(shape, dx, dy):
    y, x = np.indices(shape, float)
    return np.dstack([x + dx, y + dy])


def test_compute_sky_match_recovers_offsets():
    out_shape = (90, 110)
    skies = [10.0, 25.0, 40.0]
    shifts = [(0, 0), (17, 9), (30, 21)]
    exps = []
    for k, (sky, (dx, dy)) in enumerate(zip(skies, shifts)):
        data = sky_field(sky, 3.0, (60, 70), 20 + k, 15)
        exps.append([SkyChip(data, None, shifted_pixmap(data.shape, dx, dy), out_shape)])
    match = compute_sky(exps, skymethod="match", skystat="median")
    assert match[0] == pytest.approx(0.0, abs=1e-12)
    assert match[1] == pytest.approx(15.0, abs=0.5) and match[2] == pytest.approx(30.0, abs=0.5)
    gm = compute_sky(exps, skymethod="globalmin+match", skystat="median")
    np.testing.assert_allclose(gm, skies, atol=0.6)


def test_compute_sky_match_no_overlap():
    a = SkyChip(sky_field(10, 1, (20, 20), 1, 0), None, shifted_pixmap((20, 20), 0, 0), (100, 100))
    b = SkyChip(sky_field(10, 1, (20, 20), 2, 0), None, shifted_pixmap((20, 20), 60, 60), (100, 100))
    with pytest.raises(NoOverlapError, match="overlap"):
        compute_sky([[a], [b]], skymethod="match")


# ---------------------------------------------------------------- quick_deriv


def test_quick_deriv_interior_and_edge_quirk():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (12, 15))
    d = quick_deriv(a)
    assert d.dtype == np.float32
    inner = np.max(np.abs(np.stack([a[1:-2, 1:-2] - a[:-3, 1:-2], a[1:-2, 1:-2] - a[2:-1, 1:-2],
                                    a[1:-2, 1:-2] - a[1:-2, :-3], a[1:-2, 1:-2] - a[1:-2, 2:-1]])), axis=0)
    np.testing.assert_allclose(d[1:-2, 1:-2], inner, rtol=1e-6)
    # a constant image: 0 inside; the value itself on the rows / columns where a
    # neighbour is compared against 0 (first row, last two rows, first and last two columns)
    c = quick_deriv(np.full((8, 9), 7.0))
    edge = np.zeros((8, 9), bool)
    edge[[0, -2, -1], :] = True
    edge[:, [0, -2, -1]] = True
    np.testing.assert_array_equal(c[edge], 7.0)
    np.testing.assert_array_equal(c[~edge], 0.0)


def test_convolve_same_matches_scipy():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(4)
    m = rng.random((13, 17)) < 0.7
    for k in (np.ones((3, 3)), np.ones((2, 2)), np.ones((4, 4)), np.eye(5)[:, ::-1],
              np.pad(np.ones((2, 1)), ((0, 3), (2, 2)))):
        ref = signal.convolve2d(m, k, mode="same", boundary="symm")
        np.testing.assert_array_equal(_convolve_same(m, k.astype(np.uint8)), ref)


# ---------------------------------------------------------------- driz_cr


def cr_scene():
    rng = np.random.default_rng(8)
    shape = (40, 40)
    y, x = np.indices(shape)
    sky = 100.0
    star = 2e4 * np.exp(-((x - 25) ** 2 + (y - 12) ** 2) / (2 * 1.3**2)) / (2 * np.pi * 1.3**2)
    blotted = sky + star
    data = rng.normal(blotted, np.sqrt(blotted + 25.0))
    data[10, 8] += 800.0  # hot pixel
    data[30, 10:13] += 600.0  # 3-pixel track
    return data, blotted


@pytest.mark.parametrize("method", ["astrodrizzle", "starpix"])
def test_driz_cr_flags_hot_pixel_and_track_not_star(method):
    data, blotted = cr_scene()
    good, cleaned = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0, method=method)
    assert good.dtype == bool and cleaned.dtype == np.float32
    assert not good[10, 8] and not good[30, 10:13].any()
    assert good[8:17, 21:30].all()  # the star, in both input and blot
    assert (~good).sum() <= 4 + 3  # a few 3-sigma neighbours of the CRs at most
    assert cleaned[10, 8] == np.float32(blotted[10, 8]) and cleaned[0, 0] == np.float32(data[0, 0])


def test_driz_cr_grow_and_ctegrow():
    data, blotted = cr_scene()
    base, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0)
    g3, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0, grow=3)
    np.testing.assert_array_equal(base, driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0,
                                                method="astrodrizzle")[0])  # no difference on this scene
    assert not g3[9:12, 7:10].any()  # 3x3 box around the hot pixel
    assert g3.sum() < base.sum()
    c2, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0, ctegrow=2, cte_dir=1)
    assert not c2[8:11, 8].any() and c2[11, 8] == base[11, 8]  # tail toward lower rows
    c2n, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0, ctegrow=2, cte_dir=-1)
    assert not c2n[10:13, 8].any() and c2n[9, 8] == base[9, 8]
    c0, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0, ctegrow=2, cte_dir=0)
    np.testing.assert_array_equal(c0, base)
    # both: the CTE tail grows from the box-grown mask, as AstroDrizzle applies them one after the other
    both, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0, grow=3, ctegrow=2, cte_dir=1)
    assert not both[7:12, 7:10].any()  # the 3x3 box, and a 2-pixel tail below each of its columns
    kernel = np.zeros((5, 5), np.uint8)
    kernel[:2, 2] = 1
    expected = g3 & (convolve2d(g3, kernel, mode="same", boundary="symm") >= 2)
    np.testing.assert_array_equal(both, expected)


def _flank_scene(seed):
    """A bright star whose blotted image is broader (as drizzling and blotting make it), a CR on its flank."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((41, 41))
    r2 = (x - 20.3) ** 2 + (y - 19.8) ** 2
    flux, s_true, s_blot = 1.5e6, 1.06, 1.12
    true = 300.0 + flux * np.exp(-r2 / (2 * s_true**2)) / (2 * np.pi * s_true**2)
    blotted = 300.0 + flux * np.exp(-r2 / (2 * s_blot**2)) / (2 * np.pi * s_blot**2)
    data = rng.normal(true, np.sqrt(true + 25.0))
    # on the flank, 3.9 px from the centre: blotted star ~1100 e-, noise ~28 e-, quick_deriv ~9400 e-
    data[20, 24] += 1500.0
    return data, blotted, true


def test_driz_cr_starpix_finds_cosmic_ray_on_star_flank():
    hits = {"astrodrizzle": 0, "starpix": 0}
    for seed in range(5):
        data, blotted, true = _flank_scene(seed)
        for method in hits:
            good, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, method=method)
            hits[method] += int(not good[20, 24])
            bad = ~good[14:27, 14:27]
            bad[6, 10] = False
            # no clean pixel of the star flagged: not the core, not the broadening residual around it
            assert not bad.any(), (method, np.argwhere(bad))
        # the starpix test is off where the blotted image is not trusted
        trusted = np.ones(data.shape, bool)
        trusted[17:22, 21:26] = False
        g_untrusted, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, trusted=trusted)
        np.testing.assert_array_equal(g_untrusted, driz_cr(data, blotted, gain=1.0, readnoise=5.0,
                                                           method="astrodrizzle")[0])
    # AstroDrizzle's derivative term (1.2 x ~9400 e-) hides it; the starpix test finds it every time
    assert hits == {"astrodrizzle": 0, "starpix": 5}


def test_driz_cr_sky_counted_in_noise():
    blotted = np.full((9, 9), 100.0)
    data = blotted.copy()
    # noise sqrt(100 + backg + 25): with backg=0 the 3.5-sigma limit is 39.1, with backg=100 it is 52.8
    data[4, 4] += 45.0
    g0, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=0.0)
    g1, _ = driz_cr(data, blotted, gain=1.0, readnoise=5.0, backg=100.0)
    assert not g0[4, 4] and g1[4, 4]


# ---------------------------------------------------------------- bad input


def test_bad_input():
    a, b = np.zeros((4, 4)), np.zeros((4, 5))
    with pytest.raises(InvalidParameterError, match=r"images\[1\] has shape"):
        combine_stack([a, b])
    with pytest.raises(InvalidParameterError, match="combine_type"):
        combine_stack([a, a], combine_type="sigclip")
    with pytest.raises(InvalidParameterError, match="reject all"):
        combine_stack([a, a], combine_type="median", nhigh=2)
    with pytest.raises(InvalidParameterError, match=r"masks\[0\] has shape"):
        combine_stack([a, a], [b, b])
    with pytest.raises(InvalidParameterError, match="combine_nlow"):
        combine_stack([a, a], combine_type="median", nlow=-1)
    with pytest.raises(InvalidParameterError, match="exptime"):
        combine_stack([a, a], exptime=[1.0, 0.0])
    with pytest.raises(InvalidParameterError, match=r"chips\[1\] has shape"):
        static_mask([a, b])
    with pytest.raises(InvalidParameterError, match="blotted image has shape"):
        driz_cr(a, b, gain=1.0, readnoise=1.0)
    with pytest.raises(InvalidParameterError, match="gain"):
        driz_cr(a, a, gain=0.0, readnoise=1.0)
    with pytest.raises(InvalidParameterError, match="driz_cr_method"):
        driz_cr(a, a, gain=1.0, readnoise=1.0, method="lacosmic")
    with pytest.raises(InvalidParameterError, match="trusted"):
        driz_cr(a, a, gain=1.0, readnoise=1.0, trusted=np.ones((2, 2), bool))
    with pytest.raises(InvalidParameterError, match="skystat"):
        sky_statistic(a, skystat="biweight")
    with pytest.raises(InvalidParameterError, match="skymethod"):
        compute_sky([[SkyChip(a)]], skymethod="local")
    with pytest.raises(InvalidParameterError, match="skystat"):
        compute_sky([[SkyChip(a)]], skystat="max")
    with pytest.raises(InvalidParameterError, match="pixmap"):
        compute_sky([[SkyChip(a)], [SkyChip(a)]], skymethod="match")
    with pytest.raises(InvalidParameterError, match="no valid"):
        sky_statistic(a, np.ones((4, 4), bool))
    with pytest.raises(InvalidParameterError, match="skyupper"):
        sky_statistic(np.arange(10.0), skyupper=-5)


def test_minmed_matches_reference_formula():
    """Per-pixel reference of AstroDrizzle's min_med written independently (loops + scipy box filter)."""
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(9)
    n, ny, nx = 5, 14, 12
    et = np.array([100.0, 120.0, 90.0, 100.0, 110.0])
    rn = np.array([3.0, 4.0, 3.0, 5.0, 3.0])
    bg = np.array([30.0, 40.0, 20.0, 35.0, 25.0])
    stack = rng.normal(2.0, 0.15, (n, ny, nx)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.05] = 9.0  # cosmic rays
    stack[2, 5:8, 4:7] = 1.0  # low patch
    wht = (et[:, None, None] * rng.uniform(0.6, 1.0, stack.shape)).astype(np.float32)
    masks = rng.random(stack.shape) < 0.15
    masks[:, 0, 0] = True
    out = combine_stack(stack, masks, combine_type="minmed", weights=wht, exptime=et, readnoise=rn, background=bg,
                        nsigma=(4.0, 3.0), grow=1)
    med = np.zeros((ny, nx))
    mn = np.zeros((ny, nx))
    for y in range(ny):
        for x in range(nx):
            v = np.sort(stack[~masks[:, y, x], y, x].astype(np.float64))
            if v.size == 0:
                continue
            mn[y, x] = v[0]
            med[y, x] = v[0] if v.size == 1 else np.median(v[:-1])
    W = wht.sum(axis=0, dtype=np.float64)
    bk = (wht * (bg / et)[:, None, None]).sum(axis=0)
    r2 = ((~masks) * (rn**2)[:, None, None]).sum(axis=0)
    rms = np.sqrt(np.maximum(med * W + bk + r2, 0))
    t1 = med * W - 4 * rms
    flag = (mn * W < t1).astype(float)
    boxed = signal.convolve2d(flag, np.ones((3, 3)) / 9, mode="same", boundary="fill")
    thr = np.where(boxed == 0, t1, med * W - 3 * rms)
    ref = np.where(mn * W < thr, mn, med)
    ref[masks.all(axis=0)] = 0
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert (out == mn.astype(np.float32)).sum() > 9  # the patch and its neighbours took the minimum


def test_static_mask_min_exposures_ignores_single_noise_lows():
    from starpix.drizzle import static_mask

    rng = np.random.default_rng(11)
    chips = [rng.normal(100.0, 1.0, (64, 64)).astype(np.float32) for _ in range(4)]
    chips[0][10, 20] = 80.0          # a noise low in one exposure only
    for chip in chips:
        chip[:, 40] = 70.0           # a dead column, low in every exposure
    one = static_mask(chips, static_min_exposures=1)
    two = static_mask(chips, static_min_exposures=2)
    assert one[10, 20] and not two[10, 20]
    assert one[:, 40].all() and two[:, 40].all()
    assert (two <= one).all()
    assert static_mask(chips[:1], static_min_exposures=2)[10, 20]   # capped at the number of exposures
    with pytest.raises(InvalidParameterError, match="static_min_exposures"):
        static_mask(chips, static_min_exposures=0)
