"""docs/gradcheck.md runs: every ```python block is executed, and the output shown after it is checked.

Each ```python block must run on its own (fresh namespace) and its ``assert`` statements are the page's
claims. A ```text block that is the next fenced block after a ```python block shows what that block prints:
a report header must match a printed header in verdict, mode, eps, rtol and number of evaluations; each
table row must match a printed row in tensor, shape, failure count, verdict and location; every other line
must match a printed line, with ``...`` standing for any text. Error digits and ``atol`` (which scales with
the loss, so with every random draw) are not compared: they are noise, and differ between machines.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "gradcheck.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
HEADER = re.compile(r"^gradcheck: (PASSED|FAILED) \((\w+) mode, eps=(\S+), atol=\S+, rtol=(\S+), "
                    r"(\d+) loss evaluations\)$")
ROW = re.compile(r"^  (\S+)\s+(\(.*?\))\s+\S+\s+\S+\s+(\(.*?\))\s+\S+\s+\S+\s+(\S+)\s+(yes|NO)(?:  (worst at .*))?$")


def fenced_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text())]


def python_blocks() -> list[tuple[str, str | None]]:
    """Each python block with the text block that follows it directly, if any."""
    blocks = fenced_blocks()
    found = []
    for k, (lang, code) in enumerate(blocks):
        if lang == "python":
            after = blocks[k + 1] if k + 1 < len(blocks) else ("", "")
            found.append((code, after[1] if after[0] == "text" else None))
    return found


BLOCKS = python_blocks()


def header_key(line: str) -> tuple | None:
    match = HEADER.match(line.rstrip())
    return match.groups() if match else None


def row_key(line: str) -> tuple | None:
    match = ROW.match(line.rstrip())
    if not match:
        return None
    name, shape, _, failed, ok, location = match.groups()
    return name, shape, failed, ok, location


def check_output(shown: str, printed: str) -> None:
    lines = printed.splitlines()
    for key_of, what in ((header_key, "report header"), (row_key, "table row")):
        printed_keys = {key_of(line) for line in lines} - {None}
        for line in shown.splitlines():
            key = key_of(line)
            assert key is None or key in printed_keys, f"{what} not printed:\n{line}\nprinted:\n{printed}"
    for line in shown.splitlines():
        if not line.strip() or line.strip() == "..." or header_key(line) or row_key(line):
            continue
        pattern = re.compile(".*".join(re.escape(piece) for piece in line.rstrip().split("...")))
        assert any(pattern.fullmatch(out.rstrip()) for out in lines), \
            f"line not printed:\n{line}\nprinted:\n{printed}"


def test_the_page_has_its_examples():
    assert len(BLOCKS) >= 15
    assert sum(text is not None for _, text in BLOCKS) >= 10


@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=[str(k) for k in range(len(BLOCKS))])
def test_block_runs_and_prints_what_the_page_shows(number):
    code, shown = BLOCKS[number]
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, f"docs/gradcheck.md[python block {number}]", "exec"), {"__name__": "__doc_block__"})
    elapsed = time.perf_counter() - start
    if shown is not None:
        check_output(shown, buffer.getvalue())
    assert elapsed < 10.0, f"block {number} took {elapsed:.1f} s; examples must be quick"
