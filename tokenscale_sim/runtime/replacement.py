"""Replace an output folder whole, in a way no signal can split; tidy what a killed run left.

A run's files are staged in a hidden sibling of its output folder (``.NAME.PID-HOST.X.tmp``)
and take the folder's place only when the run succeeded (:mod:`tokenscale_sim.runtime.outputs`).
This module does the replacement: :func:`swap` exchanges the two folders in one system call
where Linux offers one (``renameat2(RENAME_EXCHANGE)``), else renames twice with the previous
run set aside in ``.NAME.PID-HOST.X.old``; SIGINT and SIGTERM are held meanwhile
(:func:`signals_deferred`), so Ctrl-C or ``kill`` leaves either the new run or the old one in
place, never neither. What only ``kill -9`` or a power cut can leave behind is put right by
:func:`recover_orphans` on the next run into the same folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def remove_folder(folder: Path) -> None:
    """Remove ``folder`` and everything in it; quiet if it is already gone."""
    shutil.rmtree(folder, ignore_errors=True)


_HIDDEN = r"^\.{name}\.(?P<pid>\d+)-(?P<host>[0-9a-f]{{8}})\.[^.]+\.(?P<kind>tmp|old)$"
"""A staging (``.tmp``) or set-aside (``.old``) sibling of an output folder:
``.NAME.PID-HOST.X.tmp``, PID the process that made it and HOST a hash of its machine's name (a
folder on a shared file system is tidied only from the machine that can tell whether PID
lives)."""


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def hidden_sibling(final: Path, kind: str) -> Path:
    """Create ``.NAME.PID-HOST.RANDOM.KIND`` beside ``final`` (``kind`` tmp: a run's staging
    folder; old: where the previous run waits during a swap)."""
    prefix = f".{final.name}.{os.getpid()}-{_host()}."
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=prefix, suffix=f".{kind}"))


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def recover_orphans(path: str | os.PathLike[str]) -> list[Path]:
    """Tidy what a killed run (``kill -9``, a power cut) left beside the output folder ``path``.

    A run stages its files in ``.NAME.PID-HOST.X.tmp`` and, when it replaces an earlier run,
    sets that one aside in ``.NAME.PID-HOST.X.old`` for the instant of the swap. When process
    PID of this machine is gone:
    an ``.old`` folder whose run never reached ``path`` (``path`` missing) is put back; other
    leftovers are removed. Folders of live processes are left alone. Returns the folders
    removed or restored (none for a clean folder)."""
    final = Path(path)
    pattern = re.compile(_HIDDEN.format(name=re.escape(final.name)))
    try:
        siblings = sorted(os.scandir(final.parent), key=lambda e: e.name)
    except OSError:
        return []
    touched = []
    for entry in siblings:
        match = pattern.match(entry.name)
        if match is None or match["host"] != _host() or _process_alive(int(match["pid"])):
            continue
        orphan = Path(entry.path)
        with contextlib.suppress(OSError):
            if match["kind"] == "old" and not final.exists() and (orphan / "run").is_dir():
                os.replace(orphan / "run", final)  # the new run did not land: the old is back
        remove_folder(orphan)
        touched.append(orphan)
    return touched


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs; deliver them (as their handlers would
    have) once it ends. For the few steps a signal must not split: the swap of an output folder,
    the clean-up of a staging folder. Outside the main thread (where Python cannot change
    handlers) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved: dict[int, Any] = {int(s): signal.getsignal(s) for s in _STOP_SIGNALS}
    held = [s for s, h in saved.items() if h not in (signal.SIG_IGN, None)]
    for s in held:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s in held:
            signal.signal(s, saved[s])
        for s in dict.fromkeys(pending):
            handler = saved[s]
            if callable(handler):
                handler(s, None)  # e.g. raises KeyboardInterrupt
            else:  # SIG_DFL: the default action (SIGTERM ends the process)
                signal.raise_signal(s)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    where the system or the file system has no such call (then nothing changed)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]  # fmt: skip
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap(staging: Path, final: Path) -> None:
    """Put ``staging`` in the place of ``final`` (whose old contents go only after that).

    The replacement cannot be split by SIGINT or SIGTERM (held meanwhile,
    :func:`signals_deferred`): either the new run is in place or the old one still is. Where
    Linux offers it the two folders are exchanged in one call; elsewhere the old run is set
    aside in ``.NAME.PID-HOST.X.old`` for the instant between two renames, and a run killed
    there (``kill -9``) is put back by :func:`recover_orphans` on the next run."""
    old = None
    try:
        with signals_deferred():
            if not final.exists():
                os.replace(staging, final)
                return
            if exchange(staging, final):
                old = staging  # now holds the previous run
            else:
                old = hidden_sibling(final, "old")
                os.replace(final, old / "run")
                try:
                    os.replace(staging, final)
                except OSError:
                    os.replace(old / "run", final)  # put the previous run back
                    raise
    finally:
        if old is not None:
            with signals_deferred():
                remove_folder(old)
