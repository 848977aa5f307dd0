"""The rule that keeps the compile cache the user's own: nothing is read from a place someone
else could have written.

Loading a compiled program runs the machine code it holds, so the cache folder must be as
private as the user's own programs (:mod:`tokenscale_sim.runtime.compile_cache`). The rule, for
the cache folder, its ``programs/`` folder and every entry in them:

- owned by the user running the process;
- a folder not writable by group or others; a file not writable by them where they can reach
  it (its folder lets group or others in);
- the folders above the cache owned by the user or root, and writable by group or others only
  with the sticky bit (``/tmp``): otherwise someone could put a folder of theirs in its place.

:func:`make_private` creates a missing cache folder with mode 0o700. On systems without user
ids (Windows) there is nothing to check.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_MODE = 0o700
"""Mode of the folders this package creates for its cache."""
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_OTHERS_ENTER = stat.S_IXGRP | stat.S_IXOTH


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _who_writes(mode: int) -> str:
    return " and ".join(w for w, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH))
                        if mode & bit)  # fmt: skip


def stat_problem(st: os.stat_result, what: str, *, reachable: bool = True) -> str | None:
    """Why ``st`` (of ``what``) breaks the rule, or None. ``reachable``: whether group or others
    can enter the folder that holds it (a file nobody else can reach may be group-writable)."""
    uid = _uid()
    if uid is None:
        return None
    if st.st_uid != uid:
        return f"{what} is owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & _OTHERS_WRITE and (reachable or stat.S_ISDIR(st.st_mode)):
        return (f"{what} is writable by {_who_writes(st.st_mode)} "
                f"(mode {stat.S_IMODE(st.st_mode):o})")  # fmt: skip
    return None


def _ancestors_problem(folder: Path) -> str | None:
    uid = _uid()
    for parent in folder.resolve().parents:
        try:
            st = parent.stat()
        except OSError:
            continue
        if st.st_uid not in (uid, 0):
            return f"the folder above it {str(parent)!r} is owned by uid {st.st_uid}"
        if st.st_mode & _OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
            return (f"the folder above it {str(parent)!r} is writable by "
                    f"{_who_writes(st.st_mode)} without the sticky bit")  # fmt: skip
    return None


def folder_problem(folder: Path, *, entries: bool = True) -> str | None:
    """Why the existing folder ``folder`` (and, with ``entries``, everything in it, one level
    down, and in its subfolders' first level) breaks the rule, or None."""
    if _uid() is None:
        return None
    try:
        st = folder.stat()
    except OSError as err:
        return f"{str(folder)!r} cannot be read ({err.strerror or err})"
    problem = stat_problem(st, f"{str(folder)!r}") or _ancestors_problem(folder)
    if problem is not None or not entries:
        return problem
    return _entries_problem(folder, st)


def _entries_problem(folder: Path, st: os.stat_result) -> str | None:
    reachable = bool(st.st_mode & _OTHERS_ENTER)
    try:
        with os.scandir(folder) as it:
            found = list(it)
    except OSError as err:
        return f"{str(folder)!r} cannot be listed ({err.strerror or err})"
    for entry in found:
        try:
            est = entry.stat(follow_symlinks=False)
            link = stat.S_ISLNK(est.st_mode)
            problem = stat_problem(est, f"{entry.path!r}", reachable=reachable) if link else None
            if link and problem is None:  # the link and what it names: both the user's own
                est = entry.stat()
        except OSError:
            continue  # gone, or a dangling link: nothing to read
        problem = problem or stat_problem(est, f"{entry.path!r}", reachable=reachable)
        if problem is None and stat.S_ISDIR(est.st_mode) and not link:
            problem = _entries_problem(Path(entry.path), est)
        if problem is not None:
            return problem
    return None


def make_private(folder: Path) -> None:
    """Create ``folder`` (and missing parents) if it does not exist, itself with mode 0o700
    (``OSError`` when it cannot be made)."""
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=PRIVATE_MODE)
    except FileExistsError:
        if not folder.is_dir():
            raise
        return  # made meanwhile by another process: checked by the caller like any folder
    os.chmod(folder, PRIVATE_MODE)  # the umask cannot have widened it, but may have narrowed it
