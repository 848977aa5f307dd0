"""Checks shared by the public API and the CLI: PRNG keys and seeds, counts and reals of
options objects, and memory estimates.

Each check raises ``ValueError`` (or ``TypeError`` for a wrong kind of argument) naming the
function, what was expected and what was got, before anything is allocated or traced.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import jax

SEED_MAX = 2**63 - 1
"""Largest seed: JAX turns a seed into a key through a 64-bit integer."""


def check_key(fn: str, key: Any, *, seed_ok: bool = False) -> None:
    """Raise ``TypeError`` unless ``key`` is a JAX PRNG key (new-style or a raw uint32 key).

    Public functions call :func:`as_key`, which takes an integer seed too (``seed_ok``: the
    message says so).

    >>> import jax
    >>> check_key("simulate", jax.random.key(0))
    >>> check_key("simulate", 0)
    Traceback (most recent call last):
    ...
    TypeError: simulate: key must be a JAX PRNG key, got int 0; pass jax.random.key(seed)
    """
    import jax
    import jax.numpy as jnp

    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return
        if key.dtype == np.uint32 and key.shape == (2,):  # legacy jax.random.PRNGKey(seed)
            return
        got = f"an array of dtype {key.dtype} and shape {key.shape}"
    else:
        got = f"{type(key).__name__} {key!r}" if np.isscalar(key) else type(key).__name__
    what = "a JAX PRNG key or an int seed" if seed_ok else "a JAX PRNG key"
    raise TypeError(f"{fn}: key must be {what}, got {got}; pass jax.random.key(seed)")


def as_key(fn: str, key: Any) -> jax.Array:
    """The one rule of every public function that takes a key: an integer seed becomes
    ``jax.random.key(seed)`` (:func:`key_from_seed`, the same with and without float64), a JAX
    PRNG key is used as it is, anything else is a ``TypeError`` (:func:`check_key`).

    >>> import jax
    >>> bool(jax.random.key_data(as_key("bootstrap", 3)).tolist()
    ...      == jax.random.key_data(jax.random.key(3)).tolist())
    True
    >>> as_key("bootstrap", "3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: bootstrap: key must be a JAX PRNG key or an int seed, got str '3'; pass ...
    """
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return key_from_seed(fn, key)
    check_key(fn, key, seed_ok=True)
    return cast("jax.Array", key)


def check_seed(fn: str, seed: Any) -> int:
    """``seed`` as an int in [0, :data:`SEED_MAX`], else ``ValueError``.

    >>> check_seed("simulate", 7)
    7
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"{fn}: seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    if not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"{fn}: seed must be in [0, 2**63 - 1], got {int(seed)}")
    return int(seed)


def key_from_seed(fn: str, seed: Any):
    """``jax.random.key(seed)`` for a checked seed, the same key with and without float64.

    ``jax.random.key`` keeps only the low 32 bits of a seed when float64 is off, so seeds
    ``s`` and ``s + 2**32`` would collide there; this builds the key from both halves.

    >>> import jax
    >>> bool((jax.random.key_data(key_from_seed("f", 2**40))
    ...       == jax.random.key_data(jax.random.key(2**40))).all())
    True
    """
    import jax
    import jax.numpy as jnp

    s = check_seed(fn, seed)
    data = jnp.asarray(np.array([s >> 32, s & 0xFFFFFFFF], dtype=np.uint32))
    return jax.random.wrap_key_data(data, impl="threefry2x32")


def machine_memory() -> int:
    """Bytes of memory this process may use: ``MemAvailable`` on Linux, else physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 2**63


def gib(nbytes: float) -> str:
    """``nbytes`` as a short GiB string: ``gib(3 * 2**30) == '3 GiB'``."""
    return f"{nbytes / 2**30:.3g} GiB"


def check_memory(fn: str, what: str, nbytes: float, hint: str, limit: float | None = None) -> None:
    """Raise ``ValueError`` when the estimated ``nbytes`` of ``what`` exceed ``limit`` (default:
    :func:`machine_memory`), before anything is allocated.

    >>> check_memory("theory", "the table", 1e3, "lower --n-max")
    >>> check_memory("theory", "the table", 2**32, "lower --n-max", limit=2**30)
    Traceback (most recent call last):
    ...
    ValueError: theory: the table needs about 4 GiB, more than the 1 GiB available; lower --n-max
    """
    available = machine_memory() if limit is None else limit
    try:
        nbytes = float(nbytes)
    except OverflowError:  # sizes given with hundreds of digits
        nbytes = float("inf")
    if nbytes > available:
        raise ValueError(
            f"{fn}: {what} needs about {gib(nbytes)}, more than the {gib(available)} available; "
            f"{hint}"
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def check_count(fn: str, name: str, value: Any, least: int = 1) -> int:
    """``value`` as an int >= ``least``: ``TypeError`` for a bool, float, string (any non-int),
    ``ValueError`` below ``least``; both name ``fn``, ``name``, the bound and the value.

    >>> check_count("FitOptions", "chunk", 8)
    8
    >>> check_count("FitOptions", "chunk", 2.0)
    Traceback (most recent call last):
    ...
    TypeError: FitOptions: chunk must be an integer >= 1, got float 2.0
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{fn}: {name} must be an integer >= {least}, got {type(value).__name__} "
            f"{_shown(value)}"
        )
    if value < least:
        raise ValueError(f"{fn}: {name} must be an integer >= {least}, got {_shown(value)}")
    return int(value)


def check_real(
    fn: str, name: str, value: Any, lo: float = -np.inf, hi: float = np.inf, *,
    open_lo: bool = False, open_hi: bool = False,
) -> float:  # fmt: skip
    """``value`` as a finite float in [lo, hi] (``open_lo`` / ``open_hi``: that end excluded):
    ``TypeError`` for a non-number (bool, string, None, a list), ``ValueError`` outside (NaN,
    inf, an integer beyond float range); both name ``fn``, ``name``, the bound and the value.

    >>> check_real("Noise", "sigma", 0.2, 0, open_lo=True)
    0.2
    >>> check_real("Noise", "sigma", float("nan"), 0, open_lo=True)
    Traceback (most recent call last):
    ...
    ValueError: Noise: sigma must be in (0, inf] and finite, got nan
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(
            f"{fn}: {name} must be a real number, got {type(value).__name__} {_shown(value)}"
        )
    try:
        x = float(value)
    except OverflowError:
        x = float("inf") if value > 0 else float("-inf")
    inside = (x > lo if open_lo else x >= lo) and (x < hi if open_hi else x <= hi)
    if not (np.isfinite(x) and inside):
        interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
        raise ValueError(f"{fn}: {name} must be in {interval} and finite, got {_shown(value)}")
    return x


class SigmaWarning(UserWarning):
    """Curves carry sigma (standard errors) that the fit's loss does not use
    (:func:`tokenscale_sim.fit.data.checks.warn_unused_sigma`); the CLI prints it as one line."""
