"""Sphinx extension: every script a page needs is served by the site itself, so the book shows its
figures and math with no network (behind a firewall, or after a CDN drops a version).

- plotly.js: the copy inside the installed plotly package (the version that wrote the figures),
  added to each page whose body holds a figure drawn by :class:`lib.figures.BookRenderer`;
- MathJax 3: the files of the ``django-static-mathjax`` wheel (tex-chtml and the components it
  loads on demand, without the speech engine), which ``mathjax_path`` in ``_config.yml`` names.

circuitsvis widgets carry their own bundle (:class:`lib.figures.Widget`); ``circuitsvis.css``
fits their head selector into the theme's text column.

It also drops a page's repeated inline scripts: Sphinx 7.4 stores sphinx-thebe's inline script
once with filename ``None`` and once with ``''``, misses the duplicate, and the second copy
throws (``Identifier 'THEBE_JS_URL' has already been declared``).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from sphinx.application import Sphinx

PLOTLY_JS = "plotly.min.js"
CIRCUITSVIS_CSS = "circuitsvis.css"
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
    shutil.copyfile(Path(__file__).with_name(CIRCUITSVIS_CSS), folder / CIRCUITSVIS_CSS)
    app.config.html_static_path.append(str(folder))


def page_assets(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    """plotly.js and the widget style on the pages that need them; each script once."""
    body = context.get("body", "")
    if 'class="plotly-graph-div"' in body:
        app.add_js_file(PLOTLY_JS)
    if 'class="circuitsvis-widget"' in body:
        app.add_css_file(CIRCUITSVIS_CSS)
    seen, scripts = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"][:] = scripts


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", stage)
    app.connect("html-page-context", page_assets, priority=900)  # after the scripts other extensions add
    return {"parallel_read_safe": True, "parallel_write_safe": True}
