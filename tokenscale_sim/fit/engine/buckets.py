"""Shape buckets: the number of curves padded to a few sizes so that compiled fits are reused.

JAX compiles one program per array shape: a fit of 50 curves and one of 54 would compile twice,
and the on-disk cache (:mod:`tokenscale_sim.runtime.compile_cache`) would not help a new CSV with a
few more curves. So the fitter sees G curves padded to ``bucket_size(G)`` of 1, 2, 3, 4, 6, 8, 12,
16, 24, 32, ... (powers of two and 1.5 times them: at most a third of the work is padding); the
extra curves are copies of the last one, fitted independently (``vmap``) and then dropped
(:func:`first_curves`), so every result is the unpadded one up to rounding (XLA vectorises
batch shapes differently: ~1e-15 relative, as across Monte Carlo chunk sizes).

Points are not padded (a choice, measured): masked extra points (``weight = 0``) are exact in
arithmetic but change the rounding of the least-squares steps, and fits that stop on a flat
likelihood plateau (n_b of nearly straight curves) then move at the 1e-6 level, which the
SciPy agreement test of the alpha(n) fits detects.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from tokenscale_sim.fit.data.curves import CurveArrays


def bucket_size(x: int) -> int:
    """The smallest bucket >= ``x`` (>= 1): 2**k or 3 * 2**(k - 1).

    >>> [bucket_size(x) for x in (1, 2, 3, 5, 7, 9, 13, 54, 1000)]
    [1, 2, 3, 6, 8, 12, 16, 64, 1024]
    """
    x = max(int(x), 1)
    power = 1 << (x - 1).bit_length()  # smallest 2**k >= x
    three = 3 * power // 4  # 1.5 * 2**(k - 2), between power / 2 and power
    return three if power >= 4 and three >= x else power


def pad_curves_to_bucket(data: CurveArrays) -> CurveArrays:
    """Curves (G, M) padded to (``bucket_size(G)``, M) with copies of the last curve; the first
    G rows are ``data`` unchanged.

    >>> from tokenscale_sim.fit.data.curves import curves_from_arrays
    >>> a = pad_curves_to_bucket(curves_from_arrays([1, 2, 4], [[1.0, 2, 3]] * 5).arrays)
    >>> a.y.shape, bool((a.y[5:] == a.y[4]).all())
    ((6, 3), True)
    """
    g = np.shape(data.n)[0]
    extra = bucket_size(g) - g
    # NumPy, not jnp.pad, and device_put, not jnp.asarray: moving the curves to the device must
    # not itself compile a program per shape (jnp.asarray does, 40 ms in a fresh process)
    return CurveArrays(
        *(jax.device_put(np.pad(np.asarray(x), ((0, extra), (0, 0)), mode="edge")) for x in data)
    )


def first_curves(result: Any, g: int) -> Any:
    """A NamedTuple of per-curve results (arrays of leading size >= G) cut to its first ``g``
    curves; fields that are not arrays (the model, names, options) are kept."""
    cut = {
        k: v[:g]
        for k, v in result._asdict().items()
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] >= g
    }
    return result._replace(**cut)
