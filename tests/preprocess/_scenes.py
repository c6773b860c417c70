"""Simulated frames for the preprocessing tests: stars (some saturated), sky, noise and cosmic rays."""

import numpy as np


def star_field(shape=(256, 256), n_stars=60, n_single=80, n_tracks=25, fwhm=2.5, sky=200.0, satlevel=50000.0,
               gain=1.0, readnoise=6.5, seed=0, n_on_stars=0):
    """Image in ADU and its truth: (image, cr_truth, star_xy, star_peak).

    Stars are Gaussians (a few above ``satlevel``, clipped there); cosmic rays are
    single hot pixels and short straight tracks of 2 to 8 pixels, bright enough
    to be real hits (hundreds to thousands of ADU); ``n_on_stars`` more single
    hits land within a pixel of the centres of unsaturated stars."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    sigma = fwhm / 2.3548
    model = np.full(shape, sky, dtype=float)
    x = rng.uniform(8, nx - 8, n_stars)
    y = rng.uniform(8, ny - 8, n_stars)
    peak = 10 ** rng.uniform(2.0, 4.3, n_stars)
    peak[: max(1, n_stars // 12)] = rng.uniform(1.5, 4.0, max(1, n_stars // 12)) * satlevel / gain
    for x0, y0, p in zip(x, y, peak):
        y1, y2, x1, x2 = int(max(0, y0 - 12)), int(min(ny, y0 + 13)), int(max(0, x0 - 12)), int(min(nx, x0 + 13))
        model[y1:y2, x1:x2] += p * np.exp(-((xx[y1:y2, x1:x2] - x0) ** 2 + (yy[y1:y2, x1:x2] - y0) ** 2)
                                          / (2 * sigma**2))
    electrons = rng.poisson(model * gain).astype(float) + rng.normal(0.0, readnoise, shape)
    image = electrons / gain
    truth = np.zeros(shape, dtype=bool)
    for _ in range(n_single):
        j, i = rng.integers(3, ny - 3), rng.integers(3, nx - 3)
        image[j, i] += rng.uniform(300, 5000)
        truth[j, i] = True
    for _ in range(n_tracks):
        j, i = rng.integers(10, ny - 10), rng.integers(10, nx - 10)
        length = rng.integers(2, 9)
        angle = rng.uniform(0, np.pi)
        for t in range(length):
            jj, ii = int(round(j + t * np.sin(angle))), int(round(i + t * np.cos(angle)))
            image[jj, ii] += rng.uniform(300, 3000)
            truth[jj, ii] = True
    unsaturated = np.flatnonzero(peak * gain < satlevel)
    for index in rng.choice(unsaturated, size=min(n_on_stars, unsaturated.size), replace=False):
        j = int(np.clip(round(y[index]) + rng.integers(-1, 2), 0, ny - 1))
        i = int(np.clip(round(x[index]) + rng.integers(-1, 2), 0, nx - 1))
        image[j, i] += rng.uniform(300, 5000)
        truth[j, i] = True
    image = np.minimum(image, satlevel / gain)
    return image, truth, np.column_stack([x, y]), peak
