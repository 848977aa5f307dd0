# Two commands do all the set-up on a machine with only Python 3.11+:
#   make demo   builds .venv with the package (and its vision extra) and runs the full study
#   make test   builds .venv with the test extra and runs lint, types and the fast test tier
#   (make test-slow runs the slow tier: statistical studies, notebooks, demo runs; CI runs both)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
OUT    ?= tokenscale-report

.PHONY: demo test test-slow lint bench notebooks clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[vision]'
	touch $@

# The hf extra (torch, transformers) runs the `measure --hf` tests. torch is pinned and installed
# first: on these machines pip finds torch 2.13.0's CPU build among the local wheels, while a
# plain `torch` (or a newer one) would fetch the multi-GB CUDA build from PyPI; '.[hf]' then
# finds torch satisfied.
$(VENV)/.test: $(VENV)/.base
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,vision,hf]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/tokenscale demo --out $(OUT) --overwrite

lint: $(VENV)/.test
	$(VENV)/bin/ruff check tokenscale_sim tests benchmarks
	$(VENV)/bin/ruff format --check tokenscale_sim tests benchmarks
	$(VENV)/bin/pyright
	@# the house check (import circles, layers.toml's order, module and folder sizes) lives beside
	@# the checkout (../shared/tools, there in CI); a user's clone without it skips the check
	@if [ -f ../shared/tools/house_check.py ]; then \
		out=$$($(PY) ../shared/tools/house_check.py); echo "$$out"; \
		echo "$$out" | tail -1 | grep -q '^house check: clean$$'; \
	else echo "house check: ../shared/tools/house_check.py not beside this clone: skipped"; fi

# The suite runs in two worker processes (pytest-xdist, whole files per worker): the 2 cores of
# CI both work, and no process compiles every JAX program of the suite (one process doing so
# grew until XLA aborted while compiling, seen in a clean-clone CI run); tests/conftest.py also
# drops JAX's in-memory compilation caches after each test file, and conftest.py keeps compiled
# programs on disk (.pytest_cache/jax-compilation) so that a program is compiled once per run.
# Two tiers: `make test` runs every test not marked `slow` (each slow statistical test keeps a
# fast sibling that can still fail); `make test-slow` runs the slow ones. .ci/run runs both.
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

test-slow: $(VENV)/.test
	$(PY) -m pytest -q -n 2 --dist loadfile -m slow

bench: $(VENV)/.test
	$(PY) benchmarks/run_all.py

# Regenerate notebooks/*.ipynb from notebooks/make_notebooks.py and run each at full size with
# nbclient, outputs stored in place (seeded: the same results every run). The compile cache is off
# so that the run time each notebook states is a first run's (a few minutes in all).
notebooks: $(VENV)/.test
	TOKENSCALE_CACHE=0 $(PY) notebooks/make_notebooks.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
