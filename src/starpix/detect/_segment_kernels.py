"""Numba kernels of the segmentation: clumps by a persistence watershed, and object growth.

Both kernels visit only the pixels they are given (already sorted by
decreasing smoothed S/N), never the whole image, and use 8-connectivity.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["persistence_clumps", "grow_labels"]


@njit(cache=True, inline="always")
def _find(parent, label):
    root = label
    while parent[root] != root:
        root = parent[root]
    while parent[label] != root:  # path compression
        nxt = parent[label]
        parent[label] = root
        label = nxt
    return root


@njit(cache=True)
def persistence_clumps(order, sn, nx, prominence):
    """Split the given pixels into clumps around local maxima (a watershed with persistence merging).

    Pixels are visited in the given order (decreasing ``sn``).  A pixel with
    no labelled neighbour starts a new clump at a local maximum; a pixel
    touching one clump joins it; a pixel touching several clumps compares
    each lower clump's peak with its own value: a clump whose peak rises
    less than ``prominence`` above this saddle is merged into the highest
    neighbouring clump (it is noise on that clump's flank), otherwise it is
    a kept clump and the pixel becomes a river pixel (label -1) between
    kept clumps.

    Parameters
    ----------
    order : int64 array
        Flat indices of the pixels, by decreasing ``sn``.
    sn : float array, flat
        The smoothed S/N image.
    nx : int
        Row length of the image.
    prominence : float
        Least rise of a clump's peak above its highest saddle to a higher clump.

    Returns
    -------
    lab : int32 array, flat, image size
        Root clump label of each visited pixel, -1 for rivers, 0 elsewhere.
    peak : float64 array
        Peak value of each label (index 0 unused).
    peak_pixel : int64 array
        Flat index of each label's peak.
    is_root : bool array
        True for the labels that survived merging.
    """
    npix = sn.size
    ny = npix // nx
    n = order.size
    lab = np.zeros(npix, np.int32)
    parent = np.empty(n + 1, np.int32)
    peak = np.empty(n + 1, np.float64)
    peak_pixel = np.empty(n + 1, np.int64)
    kept = np.zeros(n + 1, np.bool_)
    roots = np.empty(8, np.int32)
    nlab = 0
    for k in range(n):
        p = order[k]
        y = p // nx
        x = p - y * nx
        v = sn[p]
        nr = 0
        for dy in range(-1, 2):
            yy = y + dy
            if yy < 0 or yy >= ny:
                continue
            for dx in range(-1, 2):
                xx = x + dx
                if (dy == 0 and dx == 0) or xx < 0 or xx >= nx:
                    continue
                lq = lab[yy * nx + xx]
                if lq <= 0:
                    continue
                r = _find(parent, lq)
                new = True
                for i in range(nr):
                    if roots[i] == r:
                        new = False
                        break
                if new:
                    roots[nr] = r
                    nr += 1
        if nr == 0:
            nlab += 1
            parent[nlab] = nlab
            peak[nlab] = v
            peak_pixel[nlab] = p
            lab[p] = nlab
            continue
        if nr == 1:
            lab[p] = roots[0]
            continue
        high = roots[0]
        for i in range(1, nr):
            if peak[roots[i]] > peak[high]:
                high = roots[i]
        separate = 0
        for i in range(nr):
            r = roots[i]
            if r == high:
                continue
            if not kept[r] and peak[r] - v < prominence:
                parent[r] = high
            else:
                kept[r] = True
                separate += 1
        lab[p] = high if separate == 0 else -1
    for k in range(n):
        p = order[k]
        if lab[p] > 0:
            lab[p] = _find(parent, lab[p])
    is_root = np.zeros(nlab + 1, np.bool_)
    for label in range(1, nlab + 1):
        is_root[label] = parent[label] == label
    return lab, peak[: nlab + 1], peak_pixel[: nlab + 1], is_root


@njit(cache=True)
def grow_labels(labels, order, sn, nx):
    """Grow positive labels into the given pixels, highest first, in place.

    Each pass visits the still unlabelled pixels of ``order`` (decreasing
    ``sn``); a pixel with labelled 8-neighbours takes the label of its
    highest labelled neighbour.  Passes repeat until one labels nothing.

    Returns the number of pixels left unlabelled (not connected to a label).
    """
    npix = labels.size
    ny = npix // nx
    todo = order.copy()
    n = todo.size
    while n > 0:
        left = 0
        for k in range(n):
            p = todo[k]
            y = p // nx
            x = p - y * nx
            best = -1
            best_value = -np.inf
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= ny:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if (dy == 0 and dx == 0) or xx < 0 or xx >= nx:
                        continue
                    q = yy * nx + xx
                    if labels[q] > 0 and (best < 0 or sn[q] > best_value):
                        best = q
                        best_value = sn[q]
            if best >= 0:
                labels[p] = labels[best]
            else:
                todo[left] = p
                left += 1
        if left == n:
            break
        n = left
    return n
