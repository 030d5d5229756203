"""The documentation matches the code: equation tags, links between the pages, the README's example and its
test command."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"\(L\d+\)")

# Each family's tag letter, and the tags its backward function must carry: every equation it undoes or
# applies. The input projections (L1), (G1), (R1) are forward-only (their gradient is the pre-activation
# gradient itself, consumed by the weight and input GEMMs), and the RNN's (R3) is undone inside (R4).
FAMILIES = {"lstm": "L", "gru": "G", "rnn": "R"}
BACKWARD_TAGS = {
    "lstm": ("(L2)", "(L3)", "(L4)", "(L5)", "(L6)", "(L7)", "(L8)", "(L9)"),
    "gru": ("(G2)", "(G3)", "(G4)", "(G5)", "(G6)", "(G7)", "(G8)"),
    "rnn": ("(R2)", "(R4)", "(R5)", "(R6)"),
}
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\]\(([^()\s]+)\)")


def _tags(text: str, letter: str) -> set[str]:
    return set(re.findall(rf"\({letter}\d+\)", text))


def _function_source(path: Path, name: str) -> str:
    """The source text of the top-level function ``name`` in ``path``."""
    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node)
    pytest.fail(f"{path.name} has no function {name}")


def _prose(path: Path) -> str:
    """A markdown page without its fenced code blocks (whose ``# (G4) ...`` comments are not headings)."""
    return FENCE.sub("", path.read_text())


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to hyphens,
    a repeated anchor numbered -1, -2, ..."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", _prose(path), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, count = slug, 0
        while candidate in anchors:
            count += 1
            candidate = f"{slug}-{count}"
        anchors.add(candidate)
    return anchors


def test_every_lstm_equation_tag_is_derived_in_the_docs_and_every_derived_tag_is_used():
    code_tags = set(TAG.findall((ROOT / "src/bptt/lstm.py").read_text()))
    doc_tags = set(TAG.findall((ROOT / "docs/lstm.md").read_text()))
    assert code_tags, "lstm.py lost its equation tags"
    assert code_tags == doc_tags


def test_every_backward_block_of_the_lstm_carries_a_tag():
    source = (ROOT / "src/bptt/lstm.py").read_text()
    backward = source[source.index("def lstm_backward"):source.index("LSTM_FAMILY =")]
    for tag in ("(L2)", "(L3)", "(L4)", "(L5)", "(L6)", "(L7)", "(L8)"):
        assert tag in backward, tag


def test_readme_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert "gradcheck: PASSED" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick_start = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S)
    assert quick_start
    commands = quick_start.group(1).strip().splitlines()
    assert len(commands) == 2
    assert commands[0].endswith("bptt train sine")
    ci = (ROOT / ".ci/run").read_text()
    if not ci:
        pytest.fail(".ci/run is empty")
    assert commands[1] in ci.splitlines()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_equation_tag_of_a_family_is_derived_in_its_doc_and_every_derived_tag_is_used(family):
    letter = FAMILIES[family]
    code_tags = _tags((ROOT / f"src/bptt/{family}.py").read_text(), letter)
    doc_tags = _tags((ROOT / f"docs/{family}.md").read_text(), letter)
    assert code_tags, f"{family}.py lost its equation tags"
    assert not code_tags - doc_tags, f"docs/{family}.md derives no {sorted(code_tags - doc_tags)}"
    assert not doc_tags - code_tags, f"docs/{family}.md derives {sorted(doc_tags - code_tags)}, unused in the code"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_equation_tag_of_a_family_heads_a_section_of_its_doc(family):
    letter = FAMILIES[family]
    code_tags = _tags((ROOT / f"src/bptt/{family}.py").read_text(), letter)
    headings = "\n".join(re.findall(r"^#+ .*$", _prose(ROOT / f"docs/{family}.md"), re.M))
    assert code_tags <= _tags(headings, letter), sorted(code_tags - _tags(headings, letter))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_backward_function_carries_its_backward_tags(family):
    name, tags = f"{family}_backward", BACKWARD_TAGS[family]
    source = _function_source(ROOT / f"src/bptt/{family}.py", name)
    missing = [tag for tag in tags if tag not in source]
    assert not missing, f"{name} lost {missing}"
    assert _tags(source, FAMILIES[family]) <= set(tags), f"{name} has a tag missing from BACKWARD_TAGS"


@pytest.mark.parametrize("page", ["gru.md", "rnn.md"])
def test_the_family_pages_link_the_shared_stacking_page(page):
    assert "](stacking.md" in (ROOT / "docs" / page).read_text()


@pytest.mark.parametrize("page", DOCS, ids=lambda path: path.name)
def test_every_relative_link_of_the_docs_reaches_a_file_and_a_heading(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file) if file else page
        if not path.is_file():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(target)
    assert not broken, broken
