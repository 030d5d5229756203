"""A griffe extension for the API pages: the reStructuredText bits of bptt's numpydoc docstrings as Markdown.

The docstrings are written for reading in the source and for ``help()``: math as ``:math:`...``` and
``.. math::`` blocks, cross-references as ``:func:`...```, literal blocks introduced by ``::``. mkdocstrings
renders docstrings as Markdown, so before they are parsed this extension rewrites, in griffe's copy only
(the source and the doctests are untouched):

- ``.. math::`` blocks into ``$$ ... $$`` (an ``aligned`` environment when the block aligns with ``&``), and
  ``:math:`x``` into ``$x$``, which ``pymdownx.arithmatex`` hands to MathJax like the math of the pages;
- ``:func:`~bptt.x.f``` and the other roles into the code span ```f```;
- a paragraph's closing ``::`` into ``:`` (the indented block that follows is already a Markdown code block).
"""

from __future__ import annotations

import re
import textwrap

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")
INLINE_MATH = re.compile(r":math:`([^`]+)`")
MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*(.*)$")


def _role(match: re.Match) -> str:
    target = match.group(1)
    short = match.group(0).split("`")[1].startswith("~")
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _math_blocks(text: str) -> str:
    lines, out, k = text.splitlines(), [], 0
    while k < len(lines):
        match = MATH_DIRECTIVE.match(lines[k])
        if not match:
            out.append(lines[k])
            k += 1
            continue
        indent, body = match.group(1), [match.group(2)] if match.group(2) else []
        k += 1
        while k < len(lines) and (not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > len(indent)):
            body.append(lines[k])
            k += 1
        math = textwrap.dedent("\n".join(body)).strip("\n")
        if "&" in math:
            math = "\\begin{aligned}\n" + math + "\n\\end{aligned}"
        out += ["", indent + "$$", *(indent + line for line in math.splitlines()), indent + "$$", ""]
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """The docstring ``text`` with its reStructuredText math, roles and literal-block markers as Markdown."""
    text = _math_blocks(text)
    text = INLINE_MATH.sub(lambda m: f"${m.group(1)}$", text)
    text = ROLE.sub(_role, text)
    return re.sub(r"(?<=\S)::$", ":", text, flags=re.M)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring as it is loaded."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
