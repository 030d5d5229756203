"""The documentation matches the code: equation tags, the README's example and its test command."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"\(L\d+\)")


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
