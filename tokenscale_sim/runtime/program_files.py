"""One stored program on disk: JSON that says what it is, beside the executable's raw bytes.

An entry of :mod:`tokenscale_sim.runtime.stored_programs` is one file::

    tokenscale stored program\\n
    {"format": 2, "key": ..., "executable": {"bytes": ..., "sha256": ...}, ...}\\n
    <the XLA executable, as the backend serialises it>

The header is JSON: reading it executes nothing. It is checked (format, the full key, the
Python/JAX/jaxlib versions, the executable's size and sha256) before the executable is handed to
XLA. Nothing in an entry is a pickle: ``jax.experimental.serialize_executable`` pickles the
executable together with JAX's Python objects around it (avals, shardings, layouts, trees of
arguments and results), and unpickling runs whatever code a crafted file names. Here those
objects are written as plain data (:func:`describe`) and built again from it
(:func:`rebuild`), for the programs this package stores: one device, no effects, no host
callbacks, trees of tuples, lists, dicts and named tuples. Anything else raises
:class:`NotStorable` and the program is simply not stored.

Building them again uses JAX internals (``pxla.UnloadedMeshExecutable``, ``stages.Compiled``),
as ``serialize_executable`` itself does; the key holds JAX's version, so an entry is only read by
the JAX that wrote it, and a JAX whose internals moved fails in :func:`describe` (not stored) or
:func:`rebuild` (one warning, compiled again), never with a wrong program.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

MAGIC = b"tokenscale stored program\n"
FORMAT = 2
"""Version of the file layout; the key holds it, so entries of another version are not read."""


class NotStorable(ValueError):
    """The compiled program has a part plain data cannot describe; it is not stored."""


class DamagedEntry(ValueError):
    """An entry's header or bytes do not check out; it is compiled again."""


def versions() -> dict[str, str]:
    """Python, JAX and jaxlib versions: an entry is read only by the same ones."""
    import jax
    import jaxlib

    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "jax": jax.__version__,
        "jaxlib": getattr(jaxlib, "__version__", ""),
    }


# ----------------------------------------------------------------------------- pytree shapes


def describe_tree(treedef: Any) -> Any:
    """A pytree structure as JSON: ``"*"`` a leaf, ``null`` None, ``{"tuple": [...]}``,
    ``{"list": [...]}``, ``{"dict": [[key, child], ...]}`` (str keys),
    ``{"namedtuple": "module:QualName", "children": [...]}``."""
    node = treedef.node_data()
    if node is None:
        return "*"
    kind, data = node
    if kind is type(None):
        return None
    children = [describe_tree(c) for c in treedef.children()]
    if kind is tuple or kind is list:
        return {kind.__name__: children}
    if kind is dict and all(isinstance(k, str) for k in data):
        return {"dict": [[k, c] for k, c in zip(data, children, strict=True)]}
    if issubclass(kind, tuple) and hasattr(kind, "_fields") and data is None:
        return {"namedtuple": f"{kind.__module__}:{kind.__qualname__}", "children": children}
    raise NotStorable(f"a tree node of type {kind.__name__}")


def _named_tuple_class(name: Any, arity: int) -> type:
    """The named tuple class ``module:QualName`` among the modules already imported (nothing is
    imported or called to find it)."""
    if not isinstance(name, str) or ":" not in name:
        raise DamagedEntry(f"not a class name: {name!r}")
    module, qualname = name.split(":", 1)
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = obj.__dict__.get(part) if obj is not None and hasattr(obj, "__dict__") else None
    if not (isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")):
        raise DamagedEntry(f"{name} is not a named tuple of a loaded module")
    if len(obj._fields) != arity:  # pyright: ignore[reportAttributeAccessIssue]
        raise DamagedEntry(f"{name} has {len(obj._fields)} fields, the entry {arity}")  # pyright: ignore[reportAttributeAccessIssue]
    return obj


def _example(desc: Any) -> Any:
    """A Python value with the structure ``desc`` (leaves 0)."""
    if desc == "*":
        return 0
    if desc is None:
        return None
    if isinstance(desc, dict) and len(desc) == 1 and isinstance(desc.get("tuple"), list):
        return tuple(_example(c) for c in desc["tuple"])
    if isinstance(desc, dict) and len(desc) == 1 and isinstance(desc.get("list"), list):
        return [_example(c) for c in desc["list"]]
    if isinstance(desc, dict) and len(desc) == 1 and isinstance(desc.get("dict"), list):
        pairs = desc["dict"]
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise DamagedEntry("a dict node without string keys")
        return {k: _example(c) for k, c in pairs}
    if isinstance(desc, dict) and set(desc) == {"namedtuple", "children"}:
        children = desc["children"]
        if not isinstance(children, list):
            raise DamagedEntry("a named tuple without children")
        cls = _named_tuple_class(desc["namedtuple"], len(children))
        return tuple.__new__(cls, [_example(c) for c in children])
    raise DamagedEntry(f"not a tree node: {str(desc)[:60]}")


def rebuild_tree(desc: Any) -> Any:
    """The ``PyTreeDef`` :func:`describe_tree` described."""
    import jax

    return jax.tree_util.tree_structure(_example(desc))


# ----------------------------------------------------------------------------- executables


def _aval(a: Any) -> dict[str, Any]:
    from jax._src.core import ShapedArray

    if type(a) is not ShapedArray:
        raise NotStorable(f"an abstract value of type {type(a).__name__}")
    return {"shape": list(a.shape), "dtype": a.dtype.name, "weak_type": bool(a.weak_type)}


def _sharding(s: Any) -> dict[str, Any]:
    from jax.sharding import SingleDeviceSharding

    if not isinstance(s, SingleDeviceSharding):
        raise NotStorable(f"a sharding of type {type(s).__name__}")
    (device,) = s.device_set
    return {"device": int(device.id), "memory_kind": s.memory_kind}


def _layout(layout: Any) -> dict[str, Any] | None:
    if layout is None:
        return None
    return {
        "major_to_minor": list(layout.major_to_minor),
        "tiling": None if layout.tiling is None else [list(t) for t in layout.tiling],
        "sub_byte_element_size_in_bits": int(layout.sub_byte_element_size_in_bits),
    }


def describe(compiled: Any) -> tuple[dict[str, Any], bytes]:
    """(plain-data description, raw executable bytes) of a ``jax.stages.Compiled``; raises
    :class:`NotStorable` for what :func:`rebuild` could not build again."""
    import jax
    from jax._src.interpreters import pxla
    from jax._src.stages import ArgInfo

    unloaded = getattr(compiled._executable, "_unloaded_executable", None)
    if type(unloaded) is not pxla.UnloadedMeshExecutable:
        raise NotStorable("not a mesh executable")
    if compiled._params.const_args:
        raise NotStorable("closed-over constants")
    u = unloaded
    extras = (u.unordered_effects, u.ordered_effects, u.keepalive, u.host_callbacks)
    if any(extras) or u.mut is not None or u.pgle_profiler is not None:
        raise NotStorable("effects, host callbacks or mutable arrays")
    if len(u.device_list) != 1:
        raise NotStorable("a program over several devices")
    args_info, in_tree = jax.tree_util.tree_flatten(compiled.args_info)
    if not all(type(a) is ArgInfo for a in args_info):
        raise NotStorable("arguments that are not arrays")
    meta = {
        "devices": [int(d.id) for d in u.device_list],
        "name": str(u.name),
        "committed": bool(u.committed),
        "kept": sorted(int(i) for i in u.kept_var_idx),
        "args": [{**_aval(a._aval), "donated": bool(a.donated)} for a in args_info],
        "inputs": [_aval(a) for a in u.input_avals],
        "input_shardings": [_sharding(s) for s in u.input_shardings],
        "outputs": [_aval(a) for a in u.output_avals],
        "output_shardings": [_sharding(s) for s in u.output_shardings],
        "xla_in_layouts": [_layout(x) for x in u.xla_in_layouts],
        "dispatch_in_layouts": [_layout(x) for x in u.dispatch_in_layouts],
        "xla_out_layouts": [_layout(x) for x in u.xla_out_layouts],
        "in_tree": describe_tree(in_tree),
        "out_tree": describe_tree(compiled.out_tree),
        "no_kwargs": bool(compiled._no_kwargs),
    }
    executable = u.xla_executable.client.serialize_executable(u.xla_executable)
    return meta, bytes(executable)


def rebuild(meta: dict[str, Any], executable: bytes) -> Any:
    """The ``jax.stages.Compiled`` that :func:`describe` described, loaded on this backend."""
    import jax
    import numpy as np
    from jax._src.core import ShapedArray
    from jax._src.interpreters import pxla
    from jax._src.layout import Layout
    from jax._src.stages import ArgInfo
    from jax.sharding import SingleDeviceSharding
    from jaxlib import xla_client as xc

    backend = jax.devices()[0].client
    by_id = {d.id: d for d in backend.devices()}

    def aval(d):
        return ShapedArray(tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]),
                           weak_type=bool(d["weak_type"]))  # fmt: skip

    def sharding(d):
        return SingleDeviceSharding(by_id[int(d["device"])], memory_kind=d["memory_kind"])

    def layout(d):
        if d is None:
            return None
        tiling = None if d["tiling"] is None else tuple(tuple(t) for t in d["tiling"])
        return Layout(tuple(d["major_to_minor"]), tiling, d["sub_byte_element_size_in_bits"])

    device_list = xc.DeviceList(tuple(by_id[int(i)] for i in meta["devices"]))
    loaded = backend.deserialize_executable(
        executable, executable_devices=xc.DeviceList(tuple(backend.devices()))
    )
    unloaded = pxla.UnloadedMeshExecutable(
        xla_executable=loaded, device_list=device_list, backend=backend,
        input_avals=[aval(a) for a in meta["inputs"]],
        input_shardings=[sharding(s) for s in meta["input_shardings"]],
        output_avals=[aval(a) for a in meta["outputs"]],
        output_shardings=[sharding(s) for s in meta["output_shardings"]],
        committed=bool(meta["committed"]), name=str(meta["name"]),
        unordered_effects=[], ordered_effects=[], keepalive=[], host_callbacks=[],
        kept_var_idx={int(i) for i in meta["kept"]}, mut=None,
        xla_in_layouts=[layout(x) for x in meta["xla_in_layouts"]],
        dispatch_in_layouts=[layout(x) for x in meta["dispatch_in_layouts"]],
        xla_out_layouts=[layout(x) for x in meta["xla_out_layouts"]],
        all_args_info=None, pgle_profiler=None,
    )  # fmt: skip
    in_tree = rebuild_tree(meta["in_tree"])
    args_info = in_tree.unflatten([ArgInfo(aval(a), bool(a["donated"])) for a in meta["args"]])
    return jax.stages.Compiled(
        unloaded.load(), [], args_info, rebuild_tree(meta["out_tree"]),
        no_kwargs=bool(meta["no_kwargs"]),
    )  # fmt: skip


# ----------------------------------------------------------------------------- the file


def entry_bytes(meta: dict[str, Any], executable: bytes) -> bytes:
    """The file: magic line, JSON header (``meta`` with the format, versions, size and sha256
    of ``executable``), newline, the executable."""
    header = {
        **meta,
        "format": FORMAT,
        "versions": versions(),
        "executable": {"bytes": len(executable), "sha256": hashlib.sha256(executable).hexdigest()},
    }
    return MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n" + executable


def read_entry(blob: bytes, key: str) -> tuple[dict[str, Any], bytes]:
    """(header, executable) of the file ``blob`` after every check: magic, JSON, format,
    ``key``, versions, size and sha256 of the executable (:class:`DamagedEntry` otherwise)."""
    if not blob.startswith(MAGIC):
        raise DamagedEntry("not a stored program (no header)")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise DamagedEntry("the header has no end")
    try:
        header = json.loads(blob[len(MAGIC) : end])
    except (ValueError, RecursionError) as err:
        raise DamagedEntry(f"the header is not JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DamagedEntry("another format")
    if header.get("key") != key:
        raise DamagedEntry("written for another program")
    if header.get("versions") != versions():
        raise DamagedEntry(f"written by {header.get('versions')}")
    executable = blob[end + 1 :]
    recorded = header.get("executable")
    if not isinstance(recorded, dict) or recorded.get("bytes") != len(executable):
        raise DamagedEntry("the executable's size differs from the header's")
    if recorded.get("sha256") != hashlib.sha256(executable).hexdigest():
        raise DamagedEntry("the executable's sha256 differs from the header's")
    return header, executable
