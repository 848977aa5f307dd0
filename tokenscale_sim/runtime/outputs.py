"""Files in and out: output folders, CSV/JSON tables, figures and run metadata.

Only this module and :mod:`tokenscale_sim.cli` touch the file system. Every output goes through
one checked writer: :func:`check_output_file` / :func:`check_output_folder` refuse bad or
occupied paths before any work (nothing is replaced without ``overwrite``), :func:`output_folder`
stages a run's files in a temporary folder swapped in only on success, and :func:`write_csv`,
:func:`write_json`, :func:`write_npz` and :func:`save_figure` write each file atomically.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tokenscale_sim.runtime.replacement import (
    hidden_sibling,
    recover_orphans,
    remove_folder,
    signals_deferred,
    swap,
)

RUN_MARKER = "run.json"

PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff",
                 ".webp")  # fmt: skip
"""File endings a figure may be written as (matplotlib's formats without extra packages)."""


def _cannot_write(path: Path, err: OSError) -> ValueError:
    reason = err.strerror or str(err)
    return ValueError(f"cannot write {str(path)!r}: {reason}")


def _ancestor_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _probe(folder: Path, target: Path) -> None:
    """Create and remove a file in ``folder``: the only check that catches read-only mounts and
    immutable folders (``chattr +i``), which ``os.access`` misses."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".tokenscale-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise _cannot_write(target, err) from None


def check_output_file(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    what: str = "output file",
    suffixes: tuple[str, ...] | None = None,
) -> Path:
    """Check, before any work, that ``path`` can be written as a new file (or replaced, with
    ``overwrite``), and return it.

    Refused (``ValueError`` or ``FileExistsError``, one line naming the path): a folder, a path
    under a file, a missing folder, an existing file without ``overwrite``, a folder we cannot
    write into, or an ending not in ``suffixes``.
    """
    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise ValueError(
            f"{what} {str(p)!r} must end in one of {', '.join(suffixes)}, "
            f"got {p.suffix or 'none'!r}"
        )
    if p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a folder; give a file name")
    blocker = _ancestor_file(p)
    if blocker is not None:
        raise ValueError(f"{what} {str(p)!r}: {str(blocker)!r} is a file, not a folder")
    if not p.parent.is_dir():
        raise ValueError(f"{what} {str(p)!r}: folder {str(p.parent)!r} does not exist")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{what} {str(p)!r} exists; pass --overwrite to replace it")
    _probe(p.parent, p)
    return p


@contextmanager
def output_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write one file atomically: yields a temporary path beside ``path`` (same ending) that
    replaces ``path`` only when the block succeeds; on failure it is removed. ``OSError`` becomes
    a one-line ``ValueError`` naming ``path``."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp{p.suffix}")
    try:
        yield tmp
        os.replace(tmp, p)
    except OSError as err:
        raise _cannot_write(p, err) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


class OutputFolder(NamedTuple):
    """Where a run writes (see :func:`output_folder`).

    Attributes:
        final: the folder the user named; it holds the outputs once the run succeeded.
        staging: a temporary sibling folder: write every output here.
        checkpoint: where resumable state lives while the run goes on (inside ``final`` for a
            new or resumed run, so that ``--resume`` finds it after a kill; inside ``staging``
            under ``--overwrite``, so that the previous run stays whole until the swap); None
            for runs without checkpoints.
    """

    final: Path
    staging: Path
    checkpoint: Path | None


def _marker(folder: Path) -> dict[str, Any] | None:
    marker = folder / RUN_MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise ValueError(f"output folder {str(folder)!r} has an unreadable {RUN_MARKER}")
    return data


def check_output_folder(
    path: str | os.PathLike[str],
    kind: str,
    *,
    overwrite: bool = False,
    resume: bool = False,
    checkpoint: str | None = None,
) -> Path:
    """Check, before any work, that ``path`` may receive a run of ``kind``; returns it.

    Accepted: a missing or empty folder, a folder with only the marker of a failed run, a
    finished run of ``kind`` with ``overwrite`` or ``resume``, an interrupted run of ``kind``
    (its ``checkpoint`` present) with ``resume`` or ``overwrite``. Everything else is refused
    with one line (``FileExistsError`` or ``ValueError``): nothing is replaced by accident.
    """
    out = Path(path)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    recover_orphans(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {str(out)!r} exists and is not a folder")
    blocker = _ancestor_file(out)
    if blocker is not None:
        raise ValueError(f"output folder {str(out)!r}: {str(blocker)!r} is a file, not a folder")
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise ValueError(
            f"output folder {str(out)!r} is the current folder or holds it (it is replaced "
            "whole on success); name a folder for the run"
        )
    if not out.exists():
        return out
    names = {p.name for p in out.iterdir()}
    if not names or (names == {RUN_MARKER} and (_marker(out) or {}).get("kind") == kind):
        return out  # empty, or only the marker of a run that failed before writing anything
    marker = _marker(out)
    if marker is None:
        raise FileExistsError(
            f"output folder {str(out)!r} is not empty and holds no tokenscale run; "
            "choose another --out"
        )
    previous = marker.get("kind")
    if previous != kind:
        raise FileExistsError(
            f"output folder {str(out)!r} holds a {previous!r} run, not {kind!r}; "
            "choose another --out"
        )
    if overwrite or resume:
        return out
    if not marker.get("complete", True):
        raise FileExistsError(
            f"output folder {str(out)!r} holds an interrupted {kind!r} run; pass --resume to "
            "continue it or --overwrite to start again"
        )
    raise FileExistsError(
        f"output folder {str(out)!r} already holds a {kind!r} run; "
        "pass --overwrite" + (" (or --resume to continue it)" if checkpoint else "")
    )


@contextmanager
def output_folder(
    path: str | os.PathLike[str],
    kind: str,
    *,
    overwrite: bool = False,
    resume: bool = False,
    checkpoint: str | None = None,
) -> Iterator[OutputFolder]:
    """A run's output folder, replaced only when the run succeeds.

    Checks ``path`` (:func:`check_output_folder`), creates a staging folder beside it and yields
    an :class:`OutputFolder`. When the block succeeds the staging folder (with the ``run.json``
    marker, and the run's ``checkpoint`` file) takes the place of ``path``, whose previous
    contents are removed only then; when it fails the staging folder is removed and ``path`` is
    left as it was (an interrupted run keeps its checkpoint for ``--resume``).

    Args:
        path: the output folder. kind: the subcommand (``"simulate"``, ``"fit"``...).
        overwrite: replace a finished run of ``kind``. resume: continue one (keeps its
            checkpoint). checkpoint: the file name of resumable state, if the run has any.
    """
    final = check_output_folder(
        path, kind, overwrite=overwrite, resume=resume, checkpoint=checkpoint
    )
    staging = None
    created = False
    live = None
    try:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with signals_deferred():  # the folder exists only once its name is held here
                staging = hidden_sibling(final, "tmp")
        except OSError as err:
            raise _cannot_write(final, err) from None
        if checkpoint is not None:
            if overwrite:
                live = staging / checkpoint
            else:
                created = not final.exists() or not any(final.iterdir())
                final.mkdir(exist_ok=True)
                if _marker(final) is None:
                    write_json(final / RUN_MARKER, {"kind": kind, "complete": False})
                live = final / checkpoint
        yield OutputFolder(final, staging, live)
        write_json(staging / RUN_MARKER, {"kind": kind, "complete": True})
        if live is not None and live.parent == final and live.exists():
            os.replace(live, staging / live.name)
        try:
            swap(staging, final)
        except OSError as err:
            raise _cannot_write(final, err) from None
    except BaseException:
        with signals_deferred():  # a second Ctrl-C does not stop the clean-up half way
            if staging is not None:
                remove_folder(staging)
            if created and (live is None or not live.exists()):
                remove_folder(final)  # only our marker: a failed run leaves nothing behind
        raise


def prepare_out_dir(
    path: str | os.PathLike[str], kind: str, *, overwrite: bool = False, resume: bool = False
) -> Path:
    """Deprecated: check ``path`` like :func:`check_output_folder` and create it in place (no
    staging). Kept for callers outside the package; the CLI uses :func:`output_folder`."""
    out = check_output_folder(path, kind, overwrite=overwrite, resume=resume)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if _marker(out) is None:
            write_json(out / RUN_MARKER, {"kind": kind, "complete": True})
    except OSError as err:
        raise _cannot_write(out, err) from None
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "_asdict"):
        return _jsonable(obj._asdict())
    if isinstance(obj, np.ndarray | np.generic) or type(obj).__module__.startswith("jax"):
        return _jsonable(np.asarray(obj).tolist())
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # the convention: non-finite numbers are null, a status field says why
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (dicts, NamedTuples, arrays) as indented, strict JSON, atomically.

    Non-finite numbers (NaN, +-inf) are written as ``null``: strict JSON has no infinity. Where a
    value can be infinite or missing, the writer of ``obj`` adds a field that says why (e.g.
    ``"n_b_status": "no_transition"``, ``"..._open": true``); see the README.

    >>> import tempfile, json, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> json.loads(write_json(p, {"a": [1.0, float("inf"), float("nan")]}).read_text())
    {'a': [1.0, None, None]}
    """
    p = Path(path)
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    with output_file(p) as tmp:
        tmp.write_text(text)
    return p


def write_csv(path: str | os.PathLike[str], columns: Mapping[str, Any]) -> Path:
    """Write equal-length 1-D ``columns`` (arrays or sequences) as a CSV with a header row,
    atomically (NaN written as empty, +-inf as ``inf``/``-inf``)."""
    names = list(columns)
    cols = [np.asarray(columns[k]).reshape(-1) for k in names]
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise ValueError(
            "write_csv: columns must have equal length, got "
            f"{dict(zip(names, map(len, cols), strict=True))}"
        )
    p = Path(path)
    with output_file(p) as tmp, tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*cols, strict=True):
            w.writerow(
                [
                    ""
                    if isinstance(v, float | np.floating) and np.isnan(v)
                    else (repr(float(v)) if isinstance(v, float | np.floating) else v)
                    for v in row
                ]
            )
    return p


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
    """Write ``arrays`` as an ``.npz`` file atomically (no pickles)."""
    p = Path(path)
    with output_file(p) as tmp:
        np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})  # pyright: ignore[reportArgumentType]
    return p


def save_figure(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """``fig.savefig(path, **kwargs)``, atomically (the ending picks the format)."""
    p = Path(path)
    with output_file(p) as tmp:
        fig.savefig(tmp, **kwargs)
    return p


def run_metadata(**extra: Any) -> dict[str, Any]:
    """Versions, device and platform of this run, merged with ``extra`` (seed, structure...)."""
    import jax

    from tokenscale_sim import __version__

    meta: dict[str, Any] = {
        "tokenscale_sim": __version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "x64": bool(jax.config.read("jax_enable_x64")),
    }
    meta.update(extra)
    return meta
