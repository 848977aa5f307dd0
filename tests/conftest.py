"""Suite-wide fixtures."""

import jax
import pytest

from tokenscale_sim.runtime import stored_programs


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs_after_each_file():
    """Keep a worker's memory flat over the suite: the programs one test file compiled are
    rarely reused by the next, so JAX's caches are cleared when a file is done."""
    yield
    jax.clear_caches()
    stored_programs.forget_loaded()


@pytest.fixture
def hide_extra(monkeypatch):
    """``hide_extra(*prefixes)``: the optional extras' lazy imports (``hidden._optional``) of
    modules starting with a prefix fail as if the extra were not installed."""
    import importlib

    from tokenscale_sim.hidden import _optional

    real = importlib.import_module

    def hide(*prefixes: str) -> None:
        def missing(name, *args):
            if name.startswith(prefixes):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return real(name, *args)

        monkeypatch.setattr(_optional.importlib, "import_module", missing)

    return hide
