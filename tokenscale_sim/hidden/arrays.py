"""Hidden states users bring: ``.npy``, ``.npz`` or ``.safetensors``, read in pair chunks.

Layouts (``pairs`` branch pairs, ``n`` token positions, width ``d``):

- stacked: one array ``(pairs, 2, n, d)``, ``[:, 0]`` is branch A, ``[:, 1]`` branch B: a ``.npy``
  file, or the key ``hidden`` (or the only array) of an ``.npz``/``.safetensors`` file;
- split: two arrays ``(pairs, n, d)``: keys ``a`` and ``b`` (or ``A`` and ``B``) of one file, or
  two ``.npy`` files;
- optional, in the same ``.npz``/``.safetensors``: ``mask`` ``(pairs, n)`` or ``(pairs, 2, n)``
  (true = real token, a prefix of each row) or ``lengths`` ``(pairs,)``, for pairs of unequal
  length. A pair of length ``L`` contributes to ``n = 1..L`` only (both branches need n tokens).

Nothing is loaded whole: ``.npy`` and ``.safetensors`` are memory-mapped, ``.npz`` members
(stored or deflated) are decompressed as a stream, so files larger than memory work; memory is
``O(chunk * n * d)``. Every chunk is checked: finite values, no zero vector among the real tokens
(the cosine of a zero vector is undefined).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

SUFFIXES = (".npy", ".npz", ".safetensors")
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


@dataclass(frozen=True)
class ArrayRef:
    """A lazily read array: its shape, dtype and a chunk reader over the leading axis.

    Attributes:
        shape: full shape.
        dtype: element dtype as stored.
        read: ``read(chunk)`` yields consecutive slices ``[i : i + chunk]`` of the leading axis,
            as float arrays.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    read: Callable[[int], Iterator[np.ndarray]]


def _sliced(
    array: np.ndarray,
    convert: Callable[[np.ndarray], np.ndarray] = np.asarray,
    dtype: np.dtype | None = None,
) -> ArrayRef:
    def read(chunk: int) -> Iterator[np.ndarray]:
        for start in range(0, array.shape[0], chunk):
            yield convert(array[start : start + chunk])

    return ArrayRef(tuple(array.shape), array.dtype if dtype is None else dtype, read)


def _bf16(raw: np.ndarray) -> np.ndarray:
    """bfloat16 stored as uint16 -> float32 (the high half of a float32)."""
    return (np.asarray(raw, dtype=np.uint32) << 16).view(np.float32)


def _invalid(path: Path, what: str, why: str) -> ValueError:
    return ValueError(f"open_hidden: {str(path)!r} is not a valid {what} file ({why})")


def _npz_member(path: Path, key: str) -> ArrayRef:
    """Stream one ``.npz`` member (stored or deflated) without loading it."""
    member = key + ".npy"
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            size = zf.getinfo(member).file_size
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise _invalid(path, ".npz", f"member {key!r}: {err}") from None
    if not dtype.hasobject and size - offset < int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise _invalid(path, ".npz", f"member {key!r} is truncated")
    if fortran or dtype.hasobject:
        raise ValueError(
            f"open_hidden: {path.name}:{key} must be a C-ordered numeric array, got "
            f"{'Fortran order' if fortran else 'object dtype'}"
        )
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def read(chunk: int) -> Iterator[np.ndarray]:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            np.lib.format.read_magic(fh)
            reader = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            reader(fh)
            for start in range(0, shape[0], chunk):
                rows = min(chunk, shape[0] - start)
                buf = fh.read(rows * row)
                yield np.frombuffer(buf, dtype=dtype).reshape((rows, *shape[1:]))

    return ArrayRef(tuple(shape), dtype, read)


def _npz_arrays(path: Path) -> dict[str, ArrayRef]:
    try:
        with zipfile.ZipFile(path) as zf:
            keys = [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
    except (OSError, zipfile.BadZipFile) as err:
        raise _invalid(path, ".npz", str(err) or type(err).__name__) from None
    return {key: _npz_member(path, key) for key in keys}


def _safetensors_header(path: Path) -> tuple[int, dict]:
    """The JSON header of a ``.safetensors`` file and its length, checked against the file size
    before anything is read (a damaged length would otherwise allocate gigabytes)."""
    total = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _invalid(path, ".safetensors", f"{total} bytes, shorter than its 8-byte header")
        size = int.from_bytes(head, "little")
        if size > total - 8:
            raise _invalid(
                path, ".safetensors", f"header of {size} bytes in a file of {total} bytes"
            )
        try:
            header = json.loads(fh.read(size))
        except (ValueError, UnicodeDecodeError):
            raise _invalid(path, ".safetensors", "header is not JSON") from None
    if not isinstance(header, dict):
        raise _invalid(path, ".safetensors", "header is not a JSON object")
    return size, header


def _safetensors_arrays(path: Path) -> dict[str, ArrayRef]:
    size, header = _safetensors_header(path)
    data_bytes = path.stat().st_size - 8 - size
    refs = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype_name = info["dtype"]
            begin, end = (int(x) for x in info["data_offsets"])
            shape = tuple(int(x) for x in info["shape"])
        except (KeyError, TypeError, ValueError):
            raise _invalid(
                path, ".safetensors", f"entry {key!r} lacks dtype/shape/offsets"
            ) from None
        if dtype_name not in _SAFETENSORS_DTYPES:
            raise ValueError(
                f"open_hidden: {path.name}:{key} must be one of "
                f"{tuple(_SAFETENSORS_DTYPES)}, got dtype {dtype_name}"
            )
        itemsize = np.dtype(_SAFETENSORS_DTYPES[dtype_name]).itemsize
        need = int(np.prod(shape, dtype=np.int64)) * itemsize
        if min(shape, default=1) < 0 or not 0 <= begin <= end or end - begin != need:
            raise _invalid(path, ".safetensors", f"entry {key!r}: offsets do not match its shape")
        if end > data_bytes:
            raise _invalid(path, ".safetensors", f"entry {key!r} is truncated")
        dtype = _SAFETENSORS_DTYPES[dtype_name]
        mapped = (
            np.memmap(path, dtype=dtype, mode="r", offset=8 + size + begin, shape=shape)
            if need
            else np.zeros(shape, dtype=dtype)
        )
        if dtype_name == "BF16":
            refs[key] = _sliced(mapped, _bf16, np.dtype(np.float32))
        else:
            refs[key] = _sliced(mapped)
    return refs


class PairChunk(NamedTuple):
    """Consecutive branch pairs read from a source.

    Attributes:
        hidden: (c, 2, n, d) float64; tokens past a pair's length are zero.
        lengths: (c,) real tokens per pair (both branches).
        start: index of the first pair of the chunk.
    """

    hidden: np.ndarray
    lengths: np.ndarray
    start: int


@dataclass(frozen=True)
class HiddenSource:
    """Validated, lazily read hidden states of ``pairs`` branch pairs.

    Attributes:
        name: where they come from (file names), for messages and metadata.
        pairs, n, d: sizes.
        arrays: one stacked ``(pairs, 2, n, d)`` or two split ``(pairs, n, d)`` :class:`ArrayRef`.
        lengths: (pairs,) real tokens per pair, ``n`` without a mask.
    """

    name: str
    pairs: int
    n: int
    d: int
    arrays: tuple[ArrayRef, ...]
    lengths: np.ndarray


def _lengths(
    mask: np.ndarray | None, lengths: np.ndarray | None, pairs: int, n: int, name: str
) -> np.ndarray:
    """Per-pair usable length from a prefix mask or explicit lengths."""
    if mask is not None and lengths is not None:
        raise ValueError(f"open_hidden: {name}: give a mask or lengths, not both")
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        if mask.shape not in ((pairs, n), (pairs, 2, n)):
            raise ValueError(
                f"open_hidden: {name}: mask must have shape ({pairs}, {n}) or ({pairs}, 2, {n}), "
                f"got {mask.shape}"
            )
        counts = mask.sum(axis=-1)
        if not np.array_equal(mask, np.arange(n) < counts[..., None]):
            raise ValueError(
                f"open_hidden: {name}: mask must mark a prefix of each row (real tokens first), "
                "got gaps"
            )
        lengths = counts if counts.ndim == 1 else counts.min(axis=1)
    if lengths is None:
        return np.full(pairs, n, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (pairs,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"open_hidden: {name}: lengths must be integers of shape ({pairs},), got "
            f"{lengths.dtype} {lengths.shape}"
        )
    if lengths.min(initial=n) < 1 or lengths.max(initial=1) > n:
        raise ValueError(
            f"open_hidden: {name}: every pair needs between 1 and n = {n} real tokens, got "
            f"lengths in [{lengths.min()}, {lengths.max()}]"
        )
    return lengths.astype(np.int64)


def _build(name: str, arrays: tuple[ArrayRef, ...], mask=None, lengths=None) -> HiddenSource:
    for ref in arrays:
        if not np.issubdtype(ref.dtype, np.floating):
            raise ValueError(f"open_hidden: {name}: hidden states must be floats, got {ref.dtype}")
    if len(arrays) == 1:
        shape = arrays[0].shape
        if len(shape) != 4 or shape[1] != 2:
            raise ValueError(
                f"open_hidden: {name}: stacked hidden states must have shape (pairs, 2, n, d), "
                f"got {shape}"
            )
        pairs, _, n, d = shape
    else:
        sa, sb = arrays[0].shape, arrays[1].shape
        if len(sa) != 3 or len(sb) != 3:
            raise ValueError(
                f"open_hidden: {name}: A and B must each have shape (pairs, n, d), got {sa} and "
                f"{sb}"
            )
        if sa[1] != sb[1]:
            raise ValueError(
                f"open_hidden: {name}: A and B must have the same n (pad the shorter and give a "
                f"mask or lengths), got n = {sa[1]} and {sb[1]}"
            )
        if sa[0] != sb[0] or sa[2] != sb[2]:
            raise ValueError(
                f"open_hidden: {name}: A and B must have equal pairs and d, got {sa} and {sb}"
            )
        pairs, n, d = sa
    if pairs < 1 or n < 1 or d < 1:
        raise ValueError(f"open_hidden: {name}: need pairs, n, d >= 1, got {(pairs, n, d)}")
    return HiddenSource(name, pairs, n, d, arrays, _lengths(mask, lengths, pairs, n, name))


def _pick(refs: Mapping[str, ArrayRef], name: str) -> tuple[ArrayRef, ...]:
    lower = {k.lower(): v for k, v in refs.items() if k.lower() not in ("mask", "lengths")}
    if "hidden" in lower:
        return (lower["hidden"],)
    if "a" in lower and "b" in lower:
        return lower["a"], lower["b"]
    if len(lower) == 1:
        return (next(iter(lower.values())),)
    raise ValueError(
        f"open_hidden: {name} must hold 'hidden' (pairs, 2, n, d) or 'a' and 'b' (pairs, n, d), "
        f"got keys {sorted(refs)}"
    )


def _load_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` file; anything else (text, pickles, object arrays, a truncated
    file) is refused naming the file, never loaded."""
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        raise _invalid(path, ".npy", "no .npy header" if magic else "the file is empty")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        why = str(err)
        if "object" in why.lower() or "pickle" in why.lower():
            why = "object arrays are not hidden states; save a float array"
        elif "mmap length" in why:
            why = "truncated"
        raise _invalid(path, ".npy", why) from None
    except (OSError, EOFError) as err:
        raise _invalid(path, ".npy", str(err) or type(err).__name__) from None


def _small(ref: ArrayRef | None) -> np.ndarray | None:
    return None if ref is None else np.concatenate(list(ref.read(max(ref.shape[0], 1))))


def open_hidden(
    path: str | os.PathLike[str], path_b: str | os.PathLike[str] | None = None
) -> HiddenSource:
    """Open hidden states from a file (or two ``.npy`` files, A and B) without loading them.

    Args:
        path: ``.npy`` (pairs, 2, n, d), or ``.npz``/``.safetensors`` with keys as in the module
            docstring; or branch A's ``.npy`` (pairs, n, d) when ``path_b`` is given.
        path_b: branch B's ``.npy`` (pairs, n, d), or None.

    Returns:
        :class:`HiddenSource` (shapes checked; values are checked chunk by chunk while reading).

    Raises:
        FileNotFoundError: a file is missing. ValueError: wrong suffix, keys, shapes, n mismatch,
            mask or lengths.
    """
    paths = [Path(path)] + ([] if path_b is None else [Path(path_b)])
    for p in paths:
        if not p.is_file():
            if p.exists():  # a folder, or a FIFO that a read would wait on forever
                raise ValueError(f"open_hidden: {str(p)!r} is a folder or not a regular file")
            raise FileNotFoundError(f"open_hidden: no such file {str(p)!r}")
        if p.suffix not in SUFFIXES:
            raise ValueError(f"open_hidden: file must end in one of {SUFFIXES}, got {p.name!r}")
    name = " + ".join(p.name for p in paths)
    if path_b is not None or paths[0].suffix == ".npy":
        if path_b is not None and any(p.suffix != ".npy" for p in paths):
            raise ValueError(f"open_hidden: A and B as two files must both be .npy, got {name!r}")
        arrays = tuple(_sliced(_load_npy(p)) for p in paths)
        return _build(name, arrays)
    refs = (_npz_arrays if paths[0].suffix == ".npz" else _safetensors_arrays)(paths[0])
    lowered = {k.lower(): v for k, v in refs.items()}
    return _build(
        name, _pick(refs, name), _small(lowered.get("mask")), _small(lowered.get("lengths"))
    )


def from_arrays(
    h: np.ndarray | None = None,
    *,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    name: str = "arrays",
) -> HiddenSource:
    """Wrap in-memory hidden states as a :class:`HiddenSource`.

    Args:
        h: stacked (pairs, 2, n, d); or give ``a`` and ``b``, each (pairs, n, d).
        mask: optional (pairs, n) or (pairs, 2, n) prefix mask; or ``lengths`` (pairs,).
        name: label used in messages.

    >>> src = from_arrays(np.ones((3, 2, 5, 4)))
    >>> (src.pairs, src.n, src.d)
    (3, 5, 4)
    """
    if (h is None) == (a is None or b is None) or (
        h is not None and (a is not None or b is not None)
    ):
        raise ValueError(
            "from_arrays: give either h (pairs, 2, n, d) or both a and b (pairs, n, d)"
        )
    arrays = (h,) if h is not None else (a, b)
    return _build(
        name, tuple(_sliced(np.asarray(x)) for x in arrays if x is not None), mask, lengths
    )


def _check(hidden: np.ndarray, lengths: np.ndarray, start: int, name: str) -> None:
    real = np.arange(hidden.shape[2]) < lengths[:, None]  # (c, n)
    norms = np.linalg.norm(hidden, axis=-1)  # (c, 2, n)
    bad = ~np.isfinite(norms) & real[:, None]
    if bad.any():
        p, br, i = np.argwhere(bad)[0]
        raise ValueError(
            f"iter_pairs: {name}: hidden states must be finite, got NaN/inf at pair "
            f"{start + p}, branch {'AB'[br]}, token {i}"
        )
    zero = (norms == 0) & real[:, None]
    if zero.any():
        p, br, i = np.argwhere(zero)[0]
        raise ValueError(
            f"iter_pairs: {name}: every real token needs a nonzero vector (its cosine is "
            f"undefined otherwise), got a zero vector at pair {start + p}, branch {'AB'[br]}, "
            f"token {i}"
        )


def iter_pairs(source: HiddenSource, chunk: int = 64) -> Iterator[PairChunk]:
    """Read ``source`` in chunks of ``chunk`` pairs, checked and as float64.

    Tokens past a pair's length are set to zero (they never enter a statistic at those n).

    Args:
        source: from :func:`open_hidden` or :func:`from_arrays`.
        chunk: pairs per chunk (memory ``chunk * 2 * n * d * 8`` bytes).

    Yields:
        :class:`PairChunk`.

    Raises:
        ValueError: NaN/inf or a zero vector among the real tokens (names pair, branch, token).
    """
    if chunk < 1:
        raise ValueError(f"iter_pairs: chunk must be >= 1, got {chunk!r}")
    readers = [ref.read(chunk) for ref in source.arrays]
    start = 0
    for parts in zip(*readers, strict=True):
        if len(parts) == 1:
            hidden = np.asarray(parts[0], dtype=np.float64)
        else:
            hidden = np.stack([np.asarray(p, dtype=np.float64) for p in parts], axis=1)
        lengths = source.lengths[start : start + len(hidden)]
        if (lengths < source.n).any():
            hidden = np.where(
                (np.arange(source.n) < lengths[:, None])[:, None, :, None], hidden, 0.0
            )
        _check(hidden, lengths, start, source.name)
        yield PairChunk(hidden, lengths, start)
        start += len(hidden)
