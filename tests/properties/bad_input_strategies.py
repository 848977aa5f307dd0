"""The property-based bad-input suite's tools: what a door promises, and what is thrown at it.

The promise ("What bad input gets" in the README), checked by :func:`check_cli` and
:func:`check_python` on every generated input:

- a CLI subcommand either succeeds (exit 0) or exits 2 with exactly one line on stderr,
  ``tokenscale CMD: error: ...``; never a traceback, never another exit code; on exit 2 nothing
  under the example's folder was written, replaced or left behind (byte for byte), and on exit 0
  no staging folder is left and no folder that held something else was replaced;
- a Python function either returns, or raises ``ValueError`` / ``TypeError`` whose message names
  the function or the argument (one of the words the door lists); never another exception;
- no example runs longer than :data:`EXAMPLE_SECONDS` (a hang fails the example instead of the
  suite).

Two tiers (:data:`QUICK`, :data:`LONG`), profiles registered in ``tests/conftest.py``: the quick
one runs in ``make test`` (few examples per door, derandomized: the same examples every run), the
long one, hundreds of random examples a door, in the slow tier (``@pytest.mark.slow``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import signal
import string
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from tokenscale_sim.cli import main

QUICK = settings.get_profile("tokenscale-quick")
LONG = settings.get_profile("tokenscale-long")
TIERS = [
    pytest.param(QUICK, id="quick"),
    pytest.param(LONG, id="long", marks=pytest.mark.slow),
]
"""``@pytest.mark.parametrize("tier", TIERS)``: every door runs in both tiers."""


def costly(tier: settings, quick_examples: int = 6) -> settings:
    """``tier`` for a door whose valid examples compile and run programs: fewer examples in the
    quick tier (``make test`` stays fast), all of them in the long one."""
    return settings(tier, max_examples=quick_examples) if tier is QUICK else tier


EXAMPLE_SECONDS = 120
"""A single example that runs longer than this is a hang (it fails with :class:`Hang`)."""


class Hang(AssertionError):
    """An example ran past :data:`EXAMPLE_SECONDS`."""


@contextlib.contextmanager
def time_limit(seconds: float = EXAMPLE_SECONDS) -> Iterator[None]:
    """Fail with :class:`Hang` when the block runs longer than ``seconds`` (SIGALRM: main
    thread only, which is where pytest and its xdist workers run tests)."""

    def expire(signum, frame):
        raise Hang(f"the example ran past {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------ hostile values

HOSTILE_TEXT = (
    "0", "-1", "-0", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e-400", "1" * 400,
    "-" + "9" * 300, "2.5", "0.5", "1e9", "4294967297", "9" * 20, "true", "", " ", "0x10",
    "1_000", "١٢", "1,5", "abc", "1e", "+3", "1/2", "None", "[]", "1;2", "\u00a01",
)  # fmt: skip
"""Words a user types where a number belongs: out of range, non-finite, beyond float range,
hundreds of digits, not numbers at all, numbers Python reads but a user would not write."""

hostile_words = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=string.printable + "éß€\u00a0", max_size=12),
)
"""A hostile value for one command-line option (text, as argv carries it)."""

hostile_numbers = st.one_of(
    st.sampled_from([0, -1, -0.0, 0.5, 2.5, 1e9, 10**9, 10**400, -(10**300), 2**63, 2**64]),
    st.sampled_from([math.nan, math.inf, -math.inf, True, False, None, "3", "x", b"1", 1j]),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just([1, 2]),
)
"""A hostile value for one Python argument: out of range, non-finite, huge, the wrong type
(bool, str, bytes, complex, None, a list)."""


def toml_scalar(value: object) -> str:
    """``value`` as a TOML value (non-finite floats as TOML writes them; huge ints as digits)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_scalar(v)}" for k, v in value.items()) + " }"
    return str(value)


toml_values = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**400, -(10**300), True, "x", "0.5", [], [1.0, 2.0], {"kind": 1}]),
    st.sampled_from([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.5]], [[]]]),
)
"""A hostile value for one field of a TOML or JSON file."""


def deep(depth: int, inner: str = "1") -> str:
    """``[[[...1...]]]`` nested ``depth`` levels (JSON and TOML arrays)."""
    return "[" * depth + inner + "]" * depth


# ----------------------------------------------------------------------- the folder of an example


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its bytes (folders as ``<dir>``)."""
    seen = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            seen[os.path.relpath(os.path.join(folder, name), root)] = "<dir>"
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                seen[os.path.relpath(path, root)] = "<special>"
                continue
            with open(path, "rb") as fh:
                seen[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return seen


@contextlib.contextmanager
def example_folder() -> Iterator[Path]:
    """A fresh folder for one example (Hypothesis runs many examples in one test call)."""
    with tempfile.TemporaryDirectory(prefix="tokenscale-prop-") as name:
        yield Path(name)


OUT_STATES = ("absent", "empty", "foreign", "same_kind", "file")
"""What ``--out`` is before the run: missing, an empty folder, a folder of someone else's files,
an earlier run of the same subcommand, a plain file."""


def prepare_out(root: Path, state: str, command: str) -> Path:
    """Make ``root / "out"`` as ``state`` says (one of :data:`OUT_STATES`); return the path."""
    out = root / "out"
    if state == "empty":
        out.mkdir()
    elif state == "foreign":
        out.mkdir()
        (out / "thesis.tex").write_text("months of work\n")
    elif state == "same_kind":
        out.mkdir()
        (out / "run.json").write_text(f'{{"kind": "{command}", "complete": true}}')
        (out / "earlier.csv").write_text("a,b\n1,2\n")
    elif state == "file":
        out.write_text("not a folder\n")
    return out


# ---------------------------------------------------------------------------------- the promise


class Outcome(NamedTuple):
    code: int
    stdout: str
    stderr: str


def run_cli(argv: Sequence[str]) -> Outcome:
    """``tokenscale ARGV`` in this process: exit code (argparse's SystemExit included), stdout
    and stderr. Warnings are shown as the console script would show them (the test suite's
    ``filterwarnings = error`` is lifted for the call), so a stray warning is a stray line."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("always")
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if not isinstance(exc.code, int | None):
                print(exc.code, file=err)
    return Outcome(int(code), out.getvalue(), err.getvalue())


def check_cli(command: str, argv: Sequence[str], root: Path, *, out: Path | None = None) -> Outcome:
    """Run ``tokenscale COMMAND ARGV`` once and assert the promise (module docstring).

    ``root`` is the example's folder (inputs and outputs); ``out`` its ``--out``, if any."""
    before = snapshot(root)
    foreign = out is not None and out.is_dir() and (out / "thesis.tex").exists()
    with time_limit():
        result = run_cli([command, *argv])
    shown = f"argv={[command, *argv]!r}\nstderr={result.stderr!r}"
    assert "Traceback" not in result.stderr, shown
    assert result.code in (0, 2), f"exit code {result.code}\n{shown}"
    if result.code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr\n{shown}"
        assert lines[0].startswith(f"tokenscale {command}: error: "), shown
        assert len(lines[0]) > len(f"tokenscale {command}: error: ") + 5, shown
        assert snapshot(root) == before, f"a refused run changed its folder\n{shown}"
    else:
        after = snapshot(root)
        left = [p for p in after if p not in before and Path(p).name.startswith(".")]
        assert not left, f"staging left behind: {left}\n{shown}"
        assert not foreign, f"a folder of someone else's files was replaced\n{shown}"
        changed = [p for p in before if before[p] != after.get(p) and not _under(p, out, root)]
        assert not changed, f"inputs changed: {changed}\n{shown}"
        problems = [ln for ln in result.stderr.splitlines() if "Warning" in ln]
        assert not problems, f"a Python warning reached the user\n{shown}"
    return result


def _under(rel: str, out: Path | None, root: Path) -> bool:
    if out is None:
        return False
    target = os.path.relpath(out, root)
    return rel == target or rel.startswith(target + os.sep)


def check_python(
    call: Callable[[], object], names: Iterable[str], *, what: str = ""
) -> tuple[bool, object]:
    """Call ``call()`` once and assert the promise of a Python door: it returns, or it raises
    ``ValueError`` / ``TypeError`` whose message contains one of ``names`` (the function, the
    argument, the field, the file). Returns ``(True, value)`` or ``(False, error)``."""
    with time_limit(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a warning beside a result is allowed; not the promise
        try:
            return True, call()
        except (ValueError, TypeError) as err:
            message = str(err)
            assert message.strip(), f"{type(err).__name__} with no message {what}"
            wanted = list(names)
            assert any(n.lower() in message.lower() for n in wanted), (
                f"{type(err).__name__}: {message!r} names none of {wanted} {what}"
            )
            assert "Traceback" not in message
            return False, err
