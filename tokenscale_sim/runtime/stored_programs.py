"""Whole compiled programs kept on disk, called by a later process without tracing or lowering.

JAX's persistent compilation cache (:mod:`tokenscale_sim.runtime.compile_cache`) saves the XLA
compile of a rerun, but not the work before it: the cache is keyed on the lowered program, so every
process still traces the Python function and lowers it to StableHLO first (about half a second for a
fit, more than the whole SciPy script the issue measured us against). :class:`StoredProgram`
skips that too. It wraps a ``jax.jit`` function whose leading arguments are static (a model and
its options) and keeps its compiled executables in ``<cache folder>/programs`` (one file each:
a JSON header beside the executable's raw bytes, :mod:`tokenscale_sim.runtime.program_files`;
no pickle), keyed on everything that decides what the program computes, and on nothing else
(not the folder's path: a moved or copied cache is read as it was):

- the function's name and a *stable token* of its static arguments (``static_token``, given by
  the caller, e.g. :func:`tokenscale_sim.fit.laws.models.program_token`: ``None`` means "no stable
  name across processes", and the call is an ordinary ``jax.jit`` call; e.g. a law made of
  arbitrary Python functions);
- the tree, shapes, dtypes and weak types of the other arguments;
- this package's source (a hash of every ``.py`` file: a changed line is a new program), the
  Python, JAX and jaxlib versions, the backend and its devices, ``XLA_FLAGS`` and JAX's
  configuration (``jax_enable_x64`` in its thread-local scope included; the settings of the
  cache itself, its folder among them, left out: they never change a program).

Calls under a JAX transformation (tracer arguments), with keyword arguments or with arrays
spread over several devices are ordinary ``jax.jit`` calls. Programs that call into the host
other than through LAPACK are never stored. A damaged entry is compiled again (one
:class:`~tokenscale_sim.runtime.compile_cache.CacheWarning` per process); one that cannot be written
leaves the run uncached. The stored executable is the program the ``jax.jit`` call would have
compiled, so results are identical (tested with the cache on and off). It is always compiled
afresh for storing, never read back from JAX's own cache (see :meth:`StoredProgram.
_compile_and_store`).
What it saves is measured by ``benchmarks/bench_latency.py`` (``benchmarks/README.md``).

Loading an entry runs the machine code it holds, so nothing is read that another user could have
written (:mod:`tokenscale_sim.runtime.ownership`): the folder is created private (mode 0o700),
each entry is written with mode 0o600, and an entry whose open file is not owned by the user or
is writable by group or others gives one warning and switches the cache (these programs and
JAX's) off for the process (:func:`tokenscale_sim.runtime.compile_cache.
enable_compilation_cache` checks the whole folder before anything is read). The header is
checked before the executable reaches XLA.

:func:`use_folder` is called by
:func:`tokenscale_sim.runtime.compile_cache.enable_compilation_cache`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenscale_sim.runtime import program_files
from tokenscale_sim.runtime.ownership import make_private, stat_problem
from tokenscale_sim.runtime.waiting import interruptible

FORMAT = program_files.FORMAT
"""Version of the file layout (:mod:`tokenscale_sim.runtime.program_files`); in the key."""
CACHE_SETTINGS = frozenset({
    "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes", "jax_compilation_cache_max_size",
    "jax_raise_persistent_cache_errors", "jax_explain_cache_misses",
    "jax_enable_compilation_cache", "jax_compilation_cache_check_contents",
})  # fmt: skip
"""JAX settings of the cache itself, left out of the key (the folder's path among them)."""
MEMORY_PROGRAMS = 32
"""Executables a process keeps loaded per wrapped function (least recently used dropped)."""
_CUSTOM_CALL = re.compile(r'custom_call_target="([^"]+)"')
_STATE: dict[str, Any] = {"folder": None, "warned": False}
_INSTANCES: list[StoredProgram] = []


class CacheWarning(UserWarning):
    """The compilation cache could not be used; the run goes on without it (also
    :class:`tokenscale_sim.runtime.compile_cache.CacheWarning`)."""


STATS = {"loaded": 0, "stored": 0}
"""Programs this process loaded from disk and wrote to it (read by the tests and benchmarks)."""


def use_folder(folder: str | os.PathLike | None) -> None:
    """Keep programs in ``folder`` (created on the first write); None switches storing off."""
    _STATE["folder"] = None if folder is None else Path(folder)


def _cache_off() -> None:
    """Stop reading the cache folder for the rest of the process: the stored programs and
    JAX's persistent cache."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    use_folder(None)
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()


def forget_loaded() -> None:
    """Drop the executables this process holds (what ``jax.clear_caches`` does for JAX's)."""
    for program in _INSTANCES:
        program.loaded.clear()


def folder() -> Path | None:
    """The folder programs are kept in, or None when storing is off."""
    return _STATE["folder"]


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 of this package's Python source (every ``.py`` file, in path order)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _environment() -> str:
    """Everything outside the call that decides the compiled program (see the module)."""
    import jax
    import jaxlib
    import numpy as np

    devices = jax.devices()
    config = sorted((k, repr(v)) for k, v in jax.config.values.items() if k not in CACHE_SETTINGS)
    x64 = jax.dtypes.canonicalize_dtype(np.float64) == np.float64  # in its thread-local scope
    return repr((
        source_hash(), sys.version_info[:3], jax.__version__, getattr(jaxlib, "__version__", ""),
        jax.default_backend(), devices[0].device_kind, len(devices),
        os.environ.get("XLA_FLAGS", ""), x64, config,
    ))  # fmt: skip


def _argument_signature(args: tuple) -> str | None:
    """Tree, shapes, dtypes and weak types of ``args``; None when a leaf is a tracer, spans
    several devices, or is not an array or a Python number."""
    import jax
    import numpy as np
    from jax.core import Tracer

    leaves, tree = jax.tree_util.tree_flatten(args)
    parts = [str(tree)]
    for leaf in leaves:
        if isinstance(leaf, jax.Array):
            if isinstance(leaf, Tracer) or len(leaf.sharding.device_set) > 1:
                return None
            parts.append(f"{leaf.dtype}{leaf.shape}{'w' if leaf.weak_type else ''}")
        elif isinstance(leaf, np.ndarray | np.generic):
            parts.append(f"{leaf.dtype}{np.shape(leaf)}")
        elif isinstance(leaf, bool | int | float | complex):
            parts.append(type(leaf).__name__)
        else:
            return None
    return "|".join(parts)


def _warn_once(message: str) -> None:
    if not _STATE["warned"]:
        _STATE["warned"] = True
        warnings.warn(message, CacheWarning, stacklevel=4)


def _prepare_lapack() -> None:
    """Set up jaxlib's LAPACK kernels, which lowering a LAPACK call does; a loaded executable
    that calls them without it would crash the process."""
    try:
        from jaxlib.lapack import prepare_lapack_call

        prepare_lapack_call("geqrf", __import__("numpy").float64)
    except (ImportError, AttributeError):  # another jaxlib layout: lower a QR (public API)
        import jax
        import jax.numpy as jnp

        jax.jit(jnp.linalg.qr).lower(jnp.zeros((2, 2)))


class StoredProgram:
    """``jitted(*static, *args)`` with its compiled programs kept on disk (see the module).

    Args:
        jitted: a ``jax.jit`` function whose first ``n_static`` arguments are static.
        n_static: how many leading arguments are static.
        static_token: ``static args -> str | None``, a text that names them across processes
            (None: not storable; the call is then ``jitted(*static, *args)``).
    """

    def __init__(self, jitted: Any, n_static: int, static_token: Callable[..., str | None]):
        self.jitted = jitted
        self.n_static = n_static
        self.static_token = static_token
        self.name = getattr(jitted, "__name__", repr(jitted))
        self.loaded: OrderedDict[str, Any] = OrderedDict()
        functools.update_wrapper(self, jitted)
        self._storable = _renamed_jit(jitted, f"stored_{self.name}", n_static)
        _INSTANCES.append(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The program's results, awaited with Ctrl-C still heard
        (:func:`~tokenscale_sim.runtime.waiting.interruptible`; under a trace, the tracers)."""
        return interruptible(self._run(*args, **kwargs))

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        key = None if kwargs or folder() is None else self._key(args)
        if key is None:
            return self.jitted(*args, **kwargs)
        dynamic = args[self.n_static :]
        compiled = self.loaded.get(key[0])
        if compiled is None:
            compiled = self._load(*key)
            if compiled is None and folder() is None:  # the entry was not the user's own
                return self.jitted(*args)
            compiled = compiled or self._compile_and_store(args, *key)
            self.loaded[key[0]] = compiled
            while len(self.loaded) > MEMORY_PROGRAMS:
                self.loaded.popitem(last=False)
        else:
            self.loaded.move_to_end(key[0])
        return compiled(*dynamic)

    def _key(self, args: tuple) -> tuple[str, str] | None:
        """(file name, full key text), or None when the call cannot be stored."""
        static = self.static_token(*args[: self.n_static])
        signature = _argument_signature(args[self.n_static :])
        if static is None or signature is None:
            return None
        text = f"{FORMAT}|{self.name}|{static}|{signature}|{_environment()}"
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()}.program", text

    def _load(self, name: str, text: str) -> Any | None:
        """The stored executable ``name``, or None when absent, damaged (then recompiled) or
        not the user's own (then the stored programs are off for the process)."""
        path = folder() / name  # type: ignore[operator]
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        with os.fdopen(fd, "rb") as fh:
            problem = stat_problem(os.fstat(fh.fileno()), f"stored program {str(path)!r}")
            if problem is not None:
                _cache_off()
                _warn_once(f"{problem}; it is not read, and programs are compiled as if the "
                           "cache were off")  # fmt: skip
                return None
            blob = fh.read()
        try:
            header, executable = program_files.read_entry(blob, text)
            if header.get("lapack"):
                _prepare_lapack()
            compiled = program_files.rebuild(header, executable)
        except Exception as err:  # damaged or foreign entry: compile it again
            _warn_once(
                f"stored program {str(path)!r} could not be loaded ({type(err).__name__}: "
                f"{str(err)[:100]}); it is compiled again (delete the folder to rebuild it)"
            )
            return None
        STATS["loaded"] += 1
        return compiled

    def _compile_and_store(self, args: tuple, name: str, text: str) -> Any:
        """Lower and compile for ``args``, then write the executable (best effort).

        The program is compiled afresh, never taken from JAX's persistent cache: an executable
        loaded from there serialises without its machine code (jaxlib on CPU), and the entry
        written from it would fail to run (seen: "Function ... fusion not found"). So it is
        lowered under its own name (``stored_<name>``) and not written to JAX's cache.
        """
        compiled, from_jax_cache = _fresh_compile(self._storable.lower(*args))
        if from_jax_cache:
            return compiled
        targets = set(_CUSTOM_CALL.findall(compiled.as_text() or ""))
        if any(not t.startswith("lapack_") for t in targets):
            # calls into the host: not safe to load in another process; compiled (again) the
            # ordinary way, so that JAX's persistent cache keeps it
            return self.jitted.lower(*args).compile()
        try:
            meta, executable = program_files.describe(compiled)
        except program_files.NotStorable:
            return compiled  # a part plain data cannot hold: kept in this process only
        try:
            blob = program_files.entry_bytes({**meta, "key": text, "lapack": bool(targets)},
                                             executable)  # fmt: skip
            target = folder() / name  # type: ignore[operator]
            make_private(target.parent)
            tmp = target.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        except (OSError, ValueError, NotImplementedError) as err:
            _warn_once(
                f"compiled program {self.name} could not be stored in {str(folder())!r} "
                f"({type(err).__name__}: {str(err)[:100]}); the run goes on without it"
            )
            return compiled
        STATS["stored"] += 1
        return compiled


def _renamed_jit(jitted: Any, name: str, n_static: int) -> Any:
    """``jax.jit`` of the function ``jitted`` wraps, under the name ``name`` (its own programs
    in JAX's persistent cache), with the same leading static arguments."""
    import jax

    raw = jitted.__wrapped__

    def program(*args: Any) -> Any:
        return raw(*args)

    program.__name__ = program.__qualname__ = name
    return jax.jit(program, static_argnums=tuple(range(n_static)))


_JAX_CACHE_HITS = [0]


def _count_jax_cache_hit(event: str, **kwargs: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _JAX_CACHE_HITS[0] += 1


def _fresh_compile(lowered: Any) -> tuple[Any, bool]:
    """``(lowered.compile(), whether JAX's persistent cache answered it)``, writing nothing to
    that cache (``jax_persistent_cache_min_compile_time_secs`` is inf meanwhile)."""
    import jax

    if not _STATE.get("listening"):
        jax.monitoring.register_event_listener(_count_jax_cache_hit)
        _STATE["listening"] = True
    before = _JAX_CACHE_HITS[0]
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs  # pyright: ignore
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float("inf"))
    try:
        compiled = lowered.compile()
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
    return compiled, _JAX_CACHE_HITS[0] > before


def stored_program(n_static: int, static_token: Callable[..., str | None]):
    """Decorator form of :class:`StoredProgram` for a ``jax.jit`` function."""

    def wrap(jitted: Any) -> StoredProgram:
        return StoredProgram(jitted, n_static, static_token)

    return wrap
