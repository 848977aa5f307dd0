"""Suite-wide fixtures."""

from pathlib import Path

import jax
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from tokenscale_sim.runtime import stored_programs

# The property-based bad-input suite (tests/properties/): a quick tier in `make test` (the same
# few examples every run) and a long one, hundreds of random examples a door, in the slow tier.
# No example database, and Hypothesis's own files (constants it collects) go under .pytest_cache
# (ignored by git), not into a .hypothesis folder of the checkout.
set_hypothesis_home_dir(Path(__file__).parent.parent / ".pytest_cache" / "hypothesis")
_PROPERTY_COMMON = dict(
    database=None,
    deadline=None,  # a per-example limit is enforced by the suite itself (a hang fails)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    print_blob=True,
)  # fmt: skip
settings.register_profile("tokenscale-quick", max_examples=12, derandomize=True,
                          **_PROPERTY_COMMON)  # fmt: skip
settings.register_profile("tokenscale-long", max_examples=100, derandomize=True,
                          **_PROPERTY_COMMON)  # fmt: skip


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
