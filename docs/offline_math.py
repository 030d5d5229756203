"""An mkdocs hook that serves MathJax from the site itself, so that the equations render with no network.

MathJax 3 comes from the ``django-static-mathjax`` wheel (the ``docs`` extra: MathJax's own files, Apache-2.0,
no dependencies; the package name is the only thing Django about it). After each build the hook copies the
one script the pages load, ``es5/tex-mml-chtml.js``, and the web fonts it fetches beside itself
(``es5/output/chtml/fonts/woff-v2``), into ``javascripts/mathjax/`` of the built site, where
``extra_javascript`` in mkdocs.yml points.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SCRIPT = "tex-mml-chtml.js"
FONTS = Path("output/chtml/fonts/woff-v2")
TARGET = Path("javascripts/mathjax")


def mathjax_es5() -> Path:
    """The ``es5`` folder of the installed MathJax files; ImportError naming the extra when they are missing."""
    try:
        import mathjax
    except ImportError as error:
        raise ImportError("the docs need MathJax's files: pip install '.[docs]' (django-static-mathjax)") from error
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def on_post_build(config, **kwargs) -> None:
    source, target = mathjax_es5(), Path(config["site_dir"]) / TARGET
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / SCRIPT, target / SCRIPT)
    shutil.copytree(source / FONTS, target / FONTS, dirs_exist_ok=True)
