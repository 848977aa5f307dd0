"""The README's fenced blocks, how each is run, and how a shown output is compared with a run.

A block's tier is an HTML comment on the line just before its fence (invisible on the page)::

    <!--test: fast-->          `make test` (in-process), and again as a user in the slow tier
    <!--test: slow-->          the slow tier only (what a block without a marker gets)
    <!--test: hf, WHAT-->      the slow tier, tiny random models standing in for checkpoints
    <!--test: skip, REASON-->  never run; pytest prints REASON (several hosts, set-up)
    <!--test: output-->        not run: what the runnable block before it prints

What a block shows as its output is checked against what it printed:

- a ``python`` line whose comment starts with ``# ->`` shows what that statement prints
  (``print(x)  # -> 25 of 54 converged``);
- an ``output`` block (```` ```text ````) shows lines the block before it prints, in order;
- in a ``console`` block, the lines after a ``$ command`` line show what it prints.

Shown and printed text must read the same, except that each number shown is compared at the
precision shown (:func:`readme_quotes.agrees`: ``0.293`` matches ``0.29305388865385484``).
``tests/test_readme_blocks.py`` runs them; ``python tests/readme_blocks.py list`` prints each
block with its tier.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNABLE = ("bash", "sh", "shell", "console", "python")
"""Languages of blocks that are run (``sh``/``shell`` as ``bash``); others are shown only."""
TIERS = ("fast", "slow", "hf", "skip", "output")

FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*test:\s*(?P<tier>\w+)\s*(?:,\s*(?P<reason>.*?))?\s*-->\s*$")
NUMBER = r"[-+−]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
"""A printed number (a unicode minus allowed)."""


class Block(NamedTuple):
    """One fenced block: its language, text, first line (of the text, 1-based) in README.md,
    tier (:data:`TIERS`) and the reason given with ``skip``."""

    lang: str
    text: str
    line: int
    tier: str
    reason: str

    @property
    def name(self) -> str:
        return f"README.md:{self.line}-{self.lang}"


def blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` with its tier.

    >>> md = "a\\n<!--test: fast-->\\n```bash\\nls\\n```\\n\\n```python\\nx = 1\\n```\\n"
    >>> [(b.lang, b.line, b.tier) for b in blocks(md)]
    [('bash', 4, 'fast'), ('python', 8, 'slow')]
    """
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        tier = marker["tier"] if marker else ("slow" if m["lang"] in RUNNABLE else "")
        if tier and tier not in TIERS:
            raise ValueError(f"README.md line {text.count(chr(10), 0, m.start())}: tier {tier!r}")
        reason = (marker["reason"] or "") if marker else ""
        line = text.count("\n", 0, m.start("body")) + 1
        found.append(Block(m["lang"], m["body"], line, tier, reason))
    return found


def readme_blocks() -> list[Block]:
    return blocks(README.read_text())


def commands(block: Block) -> list[str]:
    """The command lines of a bash or console block (continuations joined; comments and
    ``console`` output lines dropped).

    >>> commands(Block("bash", "tokenscale a \\\\\\n  --b 1   # c\\n\\n# only\\n", 1, "", ""))
    ['tokenscale a   --b 1   # c']
    """
    lines, out, pending = block.text.splitlines(), [], ""
    for raw in lines:
        line = raw
        if block.lang == "console":
            if not raw.startswith("$ "):
                continue
            line = raw[2:]
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        out.append(pending + line)
        pending = ""
    return out


def console_outputs(block: Block) -> list[tuple[str, list[str]]]:
    """``(command, shown output lines)`` of a console block."""
    pairs: list[tuple[str, list[str]]] = []
    for raw in block.text.splitlines():
        if raw.startswith("$ "):
            pairs.append((raw[2:], []))
        elif pairs and raw.strip():
            pairs[-1][1].append(raw)
    return pairs


# ----------------------------------------------------------------------------- comparing


def _pattern(shown: str) -> tuple[re.Pattern, list[str]]:
    """A regex reading ``shown`` with flexible spaces and any number where it shows one."""
    regex, numbers = "", []
    for m in re.finditer(rf"(?P<num>{NUMBER})|(?P<space>\s+)|(?P<text>.)", shown.strip()):
        if m["num"] is not None:
            numbers.append(m["num"])
            regex += rf"({NUMBER}|nan|-?inf)"
        else:
            regex += r"\s+" if m["space"] is not None else re.escape(m["text"])
    return re.compile(regex), numbers


def shows(shown: str, printed: str) -> bool:
    """Whether ``printed`` (one line) reads as ``shown``: the same words, each number shown
    agreeing with the printed one at the precision shown.

    >>> shows("25 of 54 converged", "25 of 54 converged")
    True
    >>> shows("iterations = 7", "iterations    = 5")
    False
    >>> shows("beta = 0.293 [0.262, 0.333]", "beta = 0.29305 [0.26249, 0.33263]")
    True
    >>> shows("(54,) -0.0516", "(54,) -0.05159046316302427")
    True
    """
    from readme_quotes import agrees

    pattern, numbers = _pattern(shown)
    m = pattern.fullmatch(printed.strip())
    if m is None:
        return False
    got = m.groups()
    pairs = zip(numbers, got, strict=True)
    return all(agrees(s, float(g.replace("−", "-"))) for s, g in pairs)


def missing_lines(shown: list[str], printed: str) -> list[str]:
    """The shown lines that the printed text lacks, in order (each shown line must match a
    printed line after the previous shown line's match)."""
    out_lines = printed.splitlines()
    at, missing = 0, []
    for line in shown:
        if not line.strip():
            continue
        hit = next((i for i in range(at, len(out_lines)) if shows(line, out_lines[i])), None)
        if hit is None:
            missing.append(line)
        else:
            at = hit + 1
    return missing


# ----------------------------------------------------------------------------- running Python


class Statement(NamedTuple):
    """One top-level statement of a Python block: first and last line (of the block, 1-based),
    what it printed and what its ``# ->`` comment shows ("" if none)."""

    first: int
    last: int
    printed: str
    shown: str


def shown_comment(source: str, first: int, last: int) -> str:
    """The text after ``# ->`` on lines ``first..last`` of ``source`` ("" if none)."""
    for line in source.splitlines()[first - 1 : last]:
        m = re.search(r"#\s*->\s*(.*)$", line)
        if m:
            return m[1].strip()
    return ""


def run_statements(
    source: str, filename: str = "README.md", namespace: dict | None = None
) -> list[Statement]:
    """Execute ``source`` one top-level statement at a time in one namespace (as ``python
    FILE`` would; ``namespace``: names already defined, as in a notebook), recording what each
    prints."""
    namespace = {"__name__": "__main__", **(namespace or {})}
    done = []
    for node in ast.parse(source).body:
        code = compile(ast.Module([node], type_ignores=[]), filename, "exec")
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(code, namespace)
        last = node.end_lineno or node.lineno
        done.append(Statement(node.lineno, last, buffer.getvalue(),
                              shown_comment(source, node.lineno, last)))  # fmt: skip
    return done


def list_blocks() -> None:
    for b in readme_blocks():
        head = b.text.splitlines()[0] if b.text.strip() else ""
        print(f"{b.name:28} {b.tier or '-':6} {b.reason[:30]:30} {head[:60]}")


if (
    __name__ == "__main__"
):  # python readme_blocks.py run FILE.py OUT.json: a block as a user runs it
    if sys.argv[1:2] == ["list"]:
        list_blocks()
    else:
        path, out = Path(sys.argv[2]), Path(sys.argv[3])
        sys.path.insert(0, str(path.parent))
        loaded: dict = {}  # python readme_blocks.py run FILE.py OUT.json BEFORE.py: the names
        if len(sys.argv) > 4:  # BEFORE.py defines, as a notebook would have, are FILE's to use
            exec(compile(Path(sys.argv[4]).read_text(), sys.argv[4], "exec"), loaded)
        result = run_statements(path.read_text(), str(path), loaded)
        out.write_text(json.dumps([s._asdict() for s in result]))
