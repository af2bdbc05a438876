"""What the built site should show, read from `_toc.yml`, `_config.yml` and the executed notebooks.

The browser test (`test_browser.py`) compares these expectations with what Chromium drew; this
module needs no browser, so its logic is tested in the default run (`test_site_pages.py`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

PLOTLY_MIME = "application/vnd.plotly.v1+json"
# myst-nb drops a cell tagged remove-cell (or with an empty source) from the page, and a cell's
# outputs when it is tagged remove-output or its metadata says mystnb.remove_code_outputs
# (myst_nb/core/nb_to_tokens.py, myst_nb/core/render.py); hide-* tags only fold them away.
REMOVE_CELL = {"remove-cell", "remove_cell"}
REMOVE_OUTPUT = {"remove-output", "remove_output"}
# A circuitsvis widget's HTML is a mount point `<div id="ID">` and a script calling
# `CircuitsVis.render("ID", CircuitsVis.Component, props)`, which fills that div with React's DOM
# (circuitsvis's own HTML names it circuits-vis-<random>, lib.figures.Widget widget-N).
CIRCUITSVIS_RENDER = re.compile(r"""CircuitsVis\.render\(\s*["']([^"']+)["']""")


@dataclass(frozen=True)
class Page:
    """One page of the book: its `_toc.yml` entry (`book/zoo`), where Sphinx writes it
    (`book/zoo.html` under `_build/html`), and its notebook when it is one."""

    entry: str
    html: str
    notebook: Path | None

    @property
    def slug(self) -> str:
        return Path(self.entry).name


@dataclass(frozen=True)
class Figures:
    """The plotly figures (how many) and circuitsvis widgets (their mount points' ids) a page shows."""

    plotly: int = 0
    widgets: tuple[str, ...] = ()

    @property
    def circuitsvis(self) -> int:
        return len(self.widgets)


def toc_entries(toc: dict) -> list[str]:
    """Every `file` of a jupyter-book `_toc.yml` (root first, then parts, chapters and their
    sections, in order), without a suffix."""
    entries = [toc["root"]] if "root" in toc else []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                entries.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []):
                    walk(child)

    walk(toc)
    return [re.sub(r"\.(ipynb|md)$", "", entry) for entry in entries]


def book_pages(root: Path) -> list[Page]:
    """The pages of `_toc.yml` under `root`, the landing page first."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = []
    for entry in toc_entries(toc):
        notebook = root / f"{entry}.ipynb"
        pages.append(Page(entry, f"{entry}.html", notebook if notebook.exists() else None))
    return pages


def removes_outputs_by_default(root: Path) -> bool:
    """myst-nb's `nb_remove_code_outputs`, when `_config.yml` sets it for the whole book."""
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    sphinx_config = (config.get("sphinx") or {}).get("config") or {}
    return bool(sphinx_config.get("nb_remove_code_outputs", False))


def shown_outputs(notebook: dict, remove_outputs: bool = False):
    """The outputs of `notebook` that jupyter-book puts on the page."""
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        metadata = cell.get("metadata", {})
        tags = set(metadata.get("tags", []))
        if not source.strip() or tags & REMOVE_CELL:
            continue
        if tags & REMOVE_OUTPUT or metadata.get("mystnb", {}).get("remove_code_outputs", remove_outputs):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") in ("display_data", "execute_result"):
                yield output


def notebook_figures(notebook: dict, remove_outputs: bool = False) -> Figures:
    """The plotly figures and circuitsvis widgets the page of `notebook` shows: an output is a
    plotly figure when it carries plotly's mimetype or plotly's HTML div; each
    `CircuitsVis.render` call in an HTML output is one widget."""
    plotly, widgets = 0, []
    for output in shown_outputs(notebook, remove_outputs):
        data = output.get("data", {})
        html = data.get("text/html", "")
        html = html if isinstance(html, str) else "".join(html)
        plotly += PLOTLY_MIME in data or "plotly-graph-div" in html
        widgets += CIRCUITSVIS_RENDER.findall(html)
    return Figures(plotly, tuple(widgets))


def expected_figures(root: Path, page: Page) -> Figures:
    """The figures `page` should show: its notebook's, none for a Markdown page."""
    if page.notebook is None:
        return Figures()
    notebook = json.loads(page.notebook.read_text())
    return notebook_figures(notebook, removes_outputs_by_default(root))
