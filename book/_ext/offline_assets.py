"""Sphinx extension: every script a page needs is served by the site itself, so the book shows its
figures and math with no network (behind a firewall, or after a CDN drops a version).

- plotly.js: the copy inside the installed plotly package (the version that wrote the figures),
  added to each page whose body holds a figure drawn by :class:`lib.figures.BookRenderer`;
- MathJax 3: the files of the ``django-static-mathjax`` wheel (tex-chtml and the components it
  loads on demand, without the speech engine), which ``mathjax_path`` in ``_config.yml`` names.

circuitsvis widgets carry their own bundle (:class:`lib.figures.Widget`).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from sphinx.application import Sphinx

PLOTLY_JS = "plotly.min.js"
MATHJAX_SKIP = (
    "sre",
    "svg",
    "svg.js",
    "*-full*.js",
    "mml-*.js",
    "tex-mml-*.js",
    "tex-svg.js",
    "node-main.js",
)


def stage(app: Sphinx) -> None:
    """Copy the assets into a folder of the build tree and add it to the static path."""
    folder = Path(app.outdir).parent / "offline-assets"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(resources.files("plotly") / "package_data" / PLOTLY_JS, folder / PLOTLY_JS)
    es5 = resources.files("mathjax") / "static" / "mathjax" / "es5"
    shutil.copytree(es5, folder / "mathjax", ignore=shutil.ignore_patterns(*MATHJAX_SKIP))
    app.config.html_static_path.append(str(folder))


def add_plotly(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    if 'class="plotly-graph-div"' in context.get("body", ""):
        app.add_js_file(PLOTLY_JS)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", stage)
    app.connect("html-page-context", add_plotly)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
