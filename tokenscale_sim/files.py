"""Files in and out: output folders, CSV/JSON tables and run metadata.

Only this module and :mod:`tokenscale_sim.cli` touch the file system.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

RUN_MARKER = "run.json"


def prepare_out_dir(
    path: str | os.PathLike[str], kind: str, *, overwrite: bool = False, resume: bool = False
) -> Path:
    """Create (or reuse) an output folder for a run of ``kind``.

    A folder that already holds another run (a ``run.json`` whose ``kind`` differs, or any run
    when neither ``overwrite`` nor ``resume`` is given) is refused with ``FileExistsError``, so
    nothing is overwritten by accident. A non-empty folder without a marker is refused too.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {str(out)!r} exists and is not a folder")
    marker = out / RUN_MARKER
    if out.exists() and any(out.iterdir()):
        if not marker.exists():
            raise FileExistsError(
                f"output folder {str(out)!r} is not empty and holds no tokenscale run; "
                "choose another --out"
            )
        previous = json.loads(marker.read_text()).get("kind")
        if previous != kind:
            raise FileExistsError(
                f"output folder {str(out)!r} holds a {previous!r} run, not {kind!r}; "
                "choose another --out"
            )
        if not (overwrite or resume):
            raise FileExistsError(
                f"output folder {str(out)!r} already holds a {kind!r} run; "
                "pass --overwrite (or --resume where supported)"
            )
    out.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        write_json(marker, {"kind": kind})
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
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (dicts, NamedTuples, arrays) as indented JSON; NaN becomes ``null``."""
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")
    tmp.replace(p)
    return p


def write_csv(path: str | os.PathLike[str], columns: Mapping[str, Any]) -> Path:
    """Write equal-length 1-D ``columns`` (arrays or sequences) as a CSV with a header row
    (NaN written as empty)."""
    names = list(columns)
    cols = [np.asarray(columns[k]).reshape(-1) for k in names]
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise ValueError(
            "write_csv: columns must have equal length, got "
            f"{dict(zip(names, map(len, cols), strict=True))}"
        )
    p = Path(path)
    with p.open("w", newline="") as fh:
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
