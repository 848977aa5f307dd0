"""README.md cannot drift: every marked number agrees with the generated results it quotes.

The registry and the marker syntax are in ``tests/readme_quotes.py`` (its docstring says how to
register a new number). Fast tests read the committed results files; the slow test regenerates
the demo at its default size and checks the committed copy still holds at the printed precision.
"""

import subprocess
import sys

import pytest
import readme_quotes as rq

README = rq.ROOT / "README.md"


def _printed():
    return rq.printed_quotes(README.read_text())


def _mismatches(sources: dict, skip_machine: bool = False) -> list[str]:
    """README numbers that do not round from their source's value (one line each)."""
    bad = []
    for q in _printed():
        quote = rq.QUOTES[q.key]
        if skip_machine and quote.machine:
            continue
        value = quote.value(sources[quote.source])
        values = value if isinstance(value, tuple) else (value,)
        if len(values) != len(q.values) or not all(
            rq.agrees(p, v) for p, v in zip(q.values, values, strict=True)
        ):
            bad.append(f"README.md:{q.line} {q.key}: printed {q.values}, source gives {values}")
    return bad


def test_every_marker_is_registered_and_every_quote_is_used():
    keys = [q.key for q in _printed()]
    assert len(keys) >= 40  # the findings are marked (a broken marker pattern finds none)
    assert sorted(set(keys) - set(rq.QUOTES)) == []
    assert sorted(set(rq.QUOTES) - set(keys)) == []
    assert {q.source for q in rq.QUOTES.values()} <= set(rq.SOURCES)


def test_readme_numbers_match_the_committed_results():
    sources = {s: rq.load(s) for s in rq.SOURCES}
    bad = _mismatches(sources)
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_moved_number(tmp_path):
    """The comparison is not vacuous: moving one quoted result fails it."""
    sources = {s: rq.load(s) for s in rq.SOURCES}
    first = next(iter(sources[rq.DEMO]["paper_fits"].values()))
    first["transition_test"]["p_value"] = 0.0 if first["transition_test"]["p_value"] >= 0.05 else 1
    bad = _mismatches(sources)
    assert bad and all("paper.transition_rejections" in line for line in bad), bad


def test_marker_parsing_edges():
    text = "a −0.014<!--q:x.a--> b [0.83–0.93<!--q:x.b-->] c 10,000<!--q:x.c--> d 5.6<!--q:x.d-->x"
    got = [(q.key, q.values) for q in rq.printed_quotes(text)]
    assert got == [("x.a", ("−0.014",)), ("x.b", ("0.83", "0.93")), ("x.c", ("10,000",)),
                   ("x.d", ("5.6",))]  # fmt: skip
    assert rq.agrees("−0.014", -0.0144) and not rq.agrees("−0.014", -0.0146)


@pytest.mark.slow
def test_committed_demo_summary_is_what_the_demo_gives(tmp_path):
    """Regenerate ``tokenscale demo`` (default size, seed 0; minutes) and check every README
    number against the fresh summary at the printed precision (run times excepted)."""
    out = tmp_path / "report"
    main = "import sys; from tokenscale_sim.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", main, "demo", "--out", str(out), "--quiet"]
    subprocess.run(cmd, check=True, cwd=rq.ROOT, capture_output=True)
    sources = {s: rq.load(s) for s in rq.SOURCES}
    sources[rq.DEMO] = rq.load("summary.json", out)
    bad = _mismatches(sources, skip_machine=True)
    assert not bad, "regenerated demo differs from the README:\n" + "\n".join(bad)
