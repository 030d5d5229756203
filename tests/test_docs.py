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


# Each family is implemented twice, held equal by the tests: the textbook reference and the fast path.
IMPLEMENTATIONS = ["reference", "layers"]
# The backward functions of each implementation: the reference's loop over steps and its step function.
BACKWARD_FUNCTIONS = {"reference": ("{family}_backward", "{family}_step_backward"), "layers": ("{family}_backward",)}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_equation_tag_of_a_family_is_derived_in_its_doc_and_every_derived_tag_is_used(family, implementation):
    letter = FAMILIES[family]
    code_tags = _tags((ROOT / f"src/bptt/{implementation}/{family}.py").read_text(), letter)
    doc_tags = _tags((ROOT / f"docs/{family}.md").read_text(), letter)
    assert code_tags, f"{implementation}/{family}.py lost its equation tags"
    assert not code_tags - doc_tags, f"docs/{family}.md derives no {sorted(code_tags - doc_tags)}"
    assert not doc_tags - code_tags, f"docs/{family}.md derives {sorted(doc_tags - code_tags)}, unused in the code"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_equation_tag_of_a_family_heads_a_section_of_its_doc(family, implementation):
    letter = FAMILIES[family]
    code_tags = _tags((ROOT / f"src/bptt/{implementation}/{family}.py").read_text(), letter)
    headings = "\n".join(re.findall(r"^#+ .*$", _prose(ROOT / f"docs/{family}.md"), re.M))
    assert code_tags <= _tags(headings, letter), sorted(code_tags - _tags(headings, letter))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_backward_function_carries_its_backward_tags(family, implementation):
    path = ROOT / f"src/bptt/{implementation}/{family}.py"
    names = [name.format(family=family) for name in BACKWARD_FUNCTIONS[implementation]]
    source = "\n".join(_function_source(path, name) for name in names)
    tags = BACKWARD_TAGS[family]
    missing = [tag for tag in tags if tag not in source]
    assert not missing, f"{implementation}: {' + '.join(names)} lost {missing}"
    assert _tags(source, FAMILIES[family]) <= set(tags), f"{names} have a tag missing from BACKWARD_TAGS"


PY_BLOCK = re.compile(r"^```py\n(.*?)^```$", re.S | re.M)
FAST_PATH_WORDS = re.compile(r"feature-major|halved|internal (gate |row )?order|kernel|GateProduct|ChunkedGradients",
                             re.I)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_derivation_page_opens_with_the_math_and_the_reference_forward_pass(family):
    """The reference's step forward is shown within the page's first screen (60 lines), and nothing of the fast
    path's layout comes before it."""
    text = (ROOT / f"docs/{family}.md").read_text()
    position = text.find(f"def {family}_step_forward")
    assert position >= 0, f"docs/{family}.md does not show {family}_step_forward"
    line = text[:position].count("\n") + 1
    assert line <= 60, f"docs/{family}.md shows {family}_step_forward first on line {line}"
    early = FAST_PATH_WORDS.search(text[:position])
    assert not early, f"docs/{family}.md speaks of the fast path ({early.group(0)!r}) before the forward pass"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_code_on_a_derivation_page_is_quoted_verbatim_from_the_source(family):
    """Every line of a ```py block on a family page is a line of the family's reference or fast-path module
    (or the shared recurrent.py and kernels.py), so an excerpt cannot drift from the code; ``...`` marks a cut."""
    sources = [ROOT / f"src/bptt/reference/{family}.py", ROOT / f"src/bptt/layers/{family}.py",
               ROOT / "src/bptt/layers/recurrent.py", ROOT / "src/bptt/layers/kernels.py"]
    known = {line.strip() for path in sources for line in path.read_text().splitlines()}
    blocks = PY_BLOCK.findall((ROOT / f"docs/{family}.md").read_text())
    assert blocks, f"docs/{family}.md quotes no code"
    drifted = [line for block in blocks for line in block.splitlines()
               if line.strip() and line.strip() != "..." and line.strip() not in known]
    assert not drifted, f"docs/{family}.md quotes lines that are not in the code: {drifted[:5]}"


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


# --- Tags across the whole package, and the site's navigation -------------------------------------------------

GROUPED_TAG = re.compile(r"\(((?:[LGR]\d+)(?:,\s*[LGR]\d+)*)\)")   # (L4), and the grouped form (L1, L2)
FAMILY_OF_LETTER = {letter: family for family, letter in FAMILIES.items()}
SOURCES = sorted((ROOT / "src/bptt").rglob("*.py"))
ALL_DOCS = sorted((ROOT / "docs").rglob("*.md"))


def _all_tags(text: str) -> set[str]:
    """Every equation tag in ``text``, a grouped ``(L1, L2)`` counting as ``(L1)`` and ``(L2)``."""
    return {f"({tag.strip()})" for group in GROUPED_TAG.findall(text) for tag in group.split(",")}


def _derived_tags(family: str) -> set[str]:
    """The tags that head a section of the family's derivation: its numbered equations."""
    headings = "\n".join(re.findall(r"^#+ .*$", _prose(ROOT / f"docs/{family}.md"), re.M))
    return _tags(headings, FAMILIES[family])


def _code_tags() -> dict[str, set[str]]:
    return {path.relative_to(ROOT).as_posix(): _all_tags(path.read_text()) for path in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.relative_to(ROOT / "src").as_posix())
def test_every_equation_tag_in_the_code_heads_a_section_of_the_derivations(path):
    """Not only the family modules: the streaming kernels (stream.py) and any other file that cites a tag."""
    missing = sorted(tag for tag in _all_tags(path.read_text()) if tag not in _derived_tags(FAMILY_OF_LETTER[tag[1]]))
    assert not missing, f"{path.name} cites {missing}, which no derivation page derives under that heading"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_numbered_equation_of_a_derivation_is_used_in_the_code(family):
    used = set().union(*_code_tags().values())
    unused = sorted(_derived_tags(family) - used)
    assert _derived_tags(family), f"docs/{family}.md lost its numbered equations"
    assert not unused, f"docs/{family}.md derives {unused}, which no file in src/bptt uses"


@pytest.mark.parametrize("page", ALL_DOCS, ids=lambda path: path.relative_to(ROOT / "docs").as_posix())
def test_every_equation_tag_the_docs_mention_exists_in_the_code(page):
    used = set().union(*_code_tags().values())
    phantom = sorted(_all_tags(page.read_text()) - used)
    assert not phantom, f"{page.name} mentions {phantom}, which the code does not use"


def _nav_pages() -> list[str]:
    """The pages named in mkdocs.yml's nav, in order."""
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        """mkdocs.yml names Python objects (the toc's slugify); they are irrelevant here."""

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)

    def walk(entry) -> list[str]:
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, dict):
            return [page for value in entry.values() for page in walk(value)]
        return [page for item in entry for page in walk(item)]

    return walk(config["nav"])


def test_every_doc_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_pages()
    pages = sorted(path.relative_to(ROOT / "docs").as_posix() for path in ALL_DOCS)
    assert sorted(set(nav)) == sorted(nav), "a page appears twice in the nav"
    assert not set(pages) - set(nav), f"pages missing from mkdocs.yml's nav: {sorted(set(pages) - set(nav))}"
    assert not set(nav) - set(pages), f"nav entries without a page: {sorted(set(nav) - set(pages))}"


def test_every_public_module_has_an_api_page():
    documented = set()
    for page in (ROOT / "docs/api").rglob("*.md"):
        documented |= set(re.findall(r"^::: (bptt(?:\.\w+)*)", page.read_text(), re.M))
    modules = {".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
               for path in SOURCES}
    public = {name for name in modules if not any(part.startswith("_") for part in name.split(".")[1:])}
    missing = sorted(public - documented - {"bptt"})
    assert not missing, f"modules without a ::: directive in docs/api: {missing}"


# --- The runnable pages ---------------------------------------------------------------------------------------

# Pages whose ```python blocks are runnable examples (docs/gradcheck.md has its own test,
# test_docs_gradcheck.py). Each block runs on its own, in a fresh namespace; an excerpt of bptt's own code
# is fenced as ```py instead, and not run. A block that imports a missing optional package is skipped.
RUNNABLE_PAGES = ["index.md", "getting-started.md", "bptt.md", "training.md", "interop.md"]
OPTIONAL = {"torch", "safetensors", "onnx", "onnxruntime", "matplotlib"}
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def _runnable_blocks() -> list[tuple[str, int, str]]:
    return [(page, k, code) for page in RUNNABLE_PAGES
            for k, code in enumerate(PYTHON_BLOCK.findall((ROOT / "docs" / page).read_text()))]


def test_the_pages_with_examples_have_them():
    counts = {page: sum(1 for p, _, _ in _runnable_blocks() if p == page) for page in RUNNABLE_PAGES}
    assert all(counts[page] >= 2 for page in ("getting-started.md", "bptt.md", "training.md", "interop.md")), counts


@pytest.mark.parametrize(("page", "number", "code"), _runnable_blocks(),
                         ids=[f"{page}[{k}]" for page, k, _ in _runnable_blocks()])
def test_python_block_of_a_page_runs(page, number, code, capsys):
    try:
        exec(compile(code, f"docs/{page}[python block {number}]", "exec"), {"__name__": "__doc_block__"})
    except ModuleNotFoundError as error:
        if error.name not in OPTIONAL:
            raise
        pytest.skip(f"needs {error.name}")


# --- Equations render offline --------------------------------------------------------------------------------

def test_the_site_loads_no_script_from_the_network():
    """MathJax is served from the site (docs/offline_math.py), so the equations render with no network."""
    config = (ROOT / "mkdocs.yml").read_text()
    scripts = re.search(r"^extra_javascript:\n((?:  - .*\n)+)", config, re.M)
    assert scripts, "mkdocs.yml lists no extra_javascript"
    remote = [line for line in scripts.group(1).splitlines() if "://" in line]
    assert not remote, f"scripts fetched from the network: {remote}"
    assert "javascripts/mathjax/tex-mml-chtml.js" in scripts.group(1)
    assert "docs/offline_math.py" in config


def test_the_offline_math_hook_copies_mathjax_and_its_fonts_into_the_site(tmp_path):
    pytest.importorskip("mathjax", reason="MathJax's files come with the docs extra (django-static-mathjax)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("offline_math", ROOT / "docs/offline_math.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    hook.on_post_build({"site_dir": str(tmp_path)})
    target = tmp_path / "javascripts/mathjax"
    assert (target / "tex-mml-chtml.js").stat().st_size > 500_000
    fonts = sorted(p.name for p in (target / "output/chtml/fonts/woff-v2").iterdir())
    assert "MathJax_Main-Regular.woff" in fonts and len(fonts) > 20
