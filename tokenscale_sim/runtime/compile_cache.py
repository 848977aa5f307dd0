"""Compiled programs kept on disk between runs: JAX's persistent compilation cache.

A rerun of ``tokenscale fit`` (or of a script) loads the XLA programs the first run compiled
instead of compiling them again. The folder is, in this order:

- ``$TOKENSCALE_CACHE_DIR`` if set;
- ``$XDG_CACHE_HOME/tokenscale/jax`` if ``XDG_CACHE_HOME`` is set;
- ``~/.cache/tokenscale/jax``.

``TOKENSCALE_CACHE=0`` (or ``off``, ``false``, ``no``) switches it off. The cache is keyed on the
program, JAX's version, the device and the flags, so it can only save time, never change a
result (tested: identical numbers with the cache on and off). A folder that cannot be created or
written gives one :class:`CacheWarning` and the run goes on uncached; damaged entries are
compiled again (:func:`cache_trouble_as_one_warning` folds JAX's per-entry warnings into one).

The same call keeps whole executables of the fits in ``<folder>/programs``
(:mod:`tokenscale_sim.runtime.stored_programs`): a rerun then skips tracing and lowering as well.

A compiled program runs as the user, so the folder must be the user's own: created with mode
0o700, and a folder (or an entry in it) owned by another user or writable by group or others is
not read at all (one :class:`CacheWarning`, then the run is uncached;
:mod:`tokenscale_sim.runtime.ownership`).

The CLI switches the cache on for every subcommand; Python users call
:func:`enable_compilation_cache` once, at the top of a script or notebook::

    import tokenscale_sim
    tokenscale_sim.enable_compilation_cache()   # -> the folder used, or None

Nothing here imports JAX at module import (``import tokenscale_sim`` stays light).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

from tokenscale_sim.runtime import stored_programs
from tokenscale_sim.runtime.ownership import folder_problem, make_private
from tokenscale_sim.runtime.stored_programs import CacheWarning

__all__ = ["CacheWarning", "cache_trouble_as_one_warning", "enable_compilation_cache"]

ENV_DIR = "TOKENSCALE_CACHE_DIR"
ENV_SWITCH = "TOKENSCALE_CACHE"
OFF_VALUES = frozenset({"0", "off", "false", "no"})
MIN_COMPILE_SECONDS = 0.0
"""Programs compiled faster than this are not written. 0: every program, because a fit is many
small programs (tens of ms each) whose compile time adds up to seconds."""

_JAX_CACHE_TROUBLE = re.compile(r"Error (reading|writing) persistent compilation cache")


def default_cache_dir() -> Path:
    """The cache folder the environment names (see the module docstring); not created here."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "tokenscale" / "jax"


def cache_switched_off() -> bool:
    """True when ``TOKENSCALE_CACHE`` is one of 0, off, false, no (any case)."""
    return os.environ.get(ENV_SWITCH, "").strip().lower() in OFF_VALUES


def _writable_folder(path: Path) -> str | None:
    """None when ``path`` is (or could be made, with mode 0o700) a folder we can write; else
    the reason."""
    try:
        make_private(path)
        probe = path / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return err.strerror or str(err)
    return None


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep JAX's compiled programs in ``path`` (default :func:`default_cache_dir`).

    Args:
        path: the cache folder; created if missing. None: ``$TOKENSCALE_CACHE_DIR``, else the
            user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) + ``tokenscale/jax``.

    Returns:
        The folder in use, or None when the cache is off: ``TOKENSCALE_CACHE=0``, or the folder
        cannot be created or written, or someone else could have written it (then one
        :class:`CacheWarning` says why; never an error).

    Loading a compiled program runs its machine code, so a folder is used only if it is the
    user's own (:mod:`tokenscale_sim.runtime.ownership`): created with mode 0o700; an existing
    one, its ``programs/`` and every entry owned by the user and not writable by group or others
    (nor the folders above it, unless sticky like ``/tmp``). Otherwise neither JAX nor
    :mod:`~tokenscale_sim.runtime.stored_programs` is pointed at it.

    Example (the off switch; nothing is created or changed):
        >>> import os
        >>> os.environ["TOKENSCALE_CACHE"] = "off"
        >>> print(enable_compilation_cache())
        None
        >>> del os.environ["TOKENSCALE_CACHE"]
    """
    if cache_switched_off():
        return None
    folder = Path(path).expanduser() if path is not None else default_cache_dir()
    reason = _writable_folder(folder)
    if reason is not None:
        warnings.warn(
            f"compilation cache {str(folder)!r} is not usable ({reason}); running "
            f"without it (set {ENV_DIR} to another folder, or {ENV_SWITCH}=0)",
            CacheWarning,
            stacklevel=2,
        )
        return None
    problem = folder_problem(folder)
    if problem is not None:
        warnings.warn(
            f"compilation cache {str(folder)!r} is not used: {problem}; a compiled program "
            f"runs as you, so only a folder no one else can write is read (chmod 700 it and "
            f"its entries, or set {ENV_DIR} to a folder of your own); running without it",
            CacheWarning,
            stacklevel=2,
        )
        stored_programs.use_folder(None)
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    stored_programs.use_folder(folder / "programs")
    return folder


@contextlib.contextmanager
def cache_trouble_as_one_warning(folder: Path | None) -> Iterator[None]:
    """Fold JAX's warnings about unreadable or unwritable cache entries (one per program), and
    the stored programs' (:mod:`tokenscale_sim.runtime.stored_programs`), into one
    :class:`CacheWarning` at the end of the block; every other warning passes through as it
    would have (filters that turn warnings into errors still do)."""
    if folder is None:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=_JAX_CACHE_TROUBLE.pattern)
        yield
    # JAX's per-entry warnings and the stored programs' own (CacheWarning) are one trouble
    trouble = [
        w
        for w in caught
        if _JAX_CACHE_TROUBLE.match(str(w.message)) or issubclass(w.category, CacheWarning)
    ]
    for w in caught:
        if w not in trouble:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    if len(trouble) == 1 and issubclass(trouble[0].category, CacheWarning):
        warnings.warn(trouble[0].message, CacheWarning, stacklevel=3)  # already one line
    elif trouble:
        first = str(trouble[0].message).split(": ", 1)[-1]
        warnings.warn(
            f"{len(trouble)} compiled program(s) in the cache {str(folder)!r} could "
            f"not be read or written ({first[:120]}); they were compiled again (delete the folder "
            "to rebuild it)",
            CacheWarning,
            stacklevel=3,
        )
