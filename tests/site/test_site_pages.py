"""What the browser test expects of each page (`site_pages`), checked without a browser: the pages
of `_toc.yml` and the figures a notebook's page shows."""

from pathlib import Path

from site_pages import Figures, book_pages, notebook_figures, toc_entries

ROOT = Path(__file__).resolve().parents[2]
PLOTLY_HTML = (
    '<div id="figure-0" class="plotly-graph-div" style="height:525px"></div>'
    "<script>Plotly.newPlot(...)</script>"
)
CIRCUITSVIS_HTML = (
    '<div id="circuits-vis-1234-abcd" style="margin: 15px 0;"/>\n<script crossorigin type="module">'
    'var CircuitsVis=(()=>{...})();\nCircuitsVis.render(\n  "circuits-vis-1234-abcd",\n'
    '  CircuitsVis.AttentionHeads,\n  {"attention": []}\n)\n</script>'
)
WIDGET_HTML = (
    '<div id="widget-1" class="circuitsvis-widget"></div>\n'
    '<script>CircuitsVis.render("widget-1", CircuitsVis.AttentionHeads, {})</script>'
)


def code_cell(*outputs, tags=(), source="x", **metadata):
    return {
        "cell_type": "code",
        "source": source,
        "metadata": {"tags": list(tags), **metadata},
        "outputs": list(outputs),
    }


def display(data, kind="display_data"):
    return {"output_type": kind, "data": data, "metadata": {}}


def notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_toc_entries_in_order_with_root_parts_and_sections():
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {
                "caption": "A",
                "chapters": [{"file": "book/a.ipynb"}, {"file": "book/b", "sections": [{"file": "book/b1"}]}],
            },
            {"caption": "B", "chapters": [{"file": "book/c.md"}]},
        ],
    }
    assert toc_entries(toc) == ["intro", "book/a", "book/b", "book/b1", "book/c"]


def test_book_pages_are_the_toc_files_with_their_notebooks():
    pages = book_pages(ROOT)
    assert pages[0].entry == "intro" and pages[0].notebook is None
    assert {page.html for page in pages} >= {"book/residual_stream.html", "book/zoo.html"}
    for page in pages:
        assert page.notebook is None or page.notebook == ROOT / f"{page.entry}.ipynb"


def test_plotly_outputs_count_once_whether_json_html_or_both():
    nb = notebook(
        code_cell(
            display({"application/vnd.plotly.v1+json": {}, "text/html": PLOTLY_HTML}),
            display({"text/html": [PLOTLY_HTML]}, kind="execute_result"),
            display({"application/vnd.plotly.v1+json": {}, "text/plain": "Figure"}),
            display({"text/html": "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"}),
            {"output_type": "stream", "name": "stdout", "text": "plotly-graph-div"},
        )
    )
    assert notebook_figures(nb) == Figures(plotly=3)


def test_circuitsvis_widgets_are_their_render_calls():
    nb = notebook(code_cell(display({"text/html": CIRCUITSVIS_HTML}), display({"text/html": WIDGET_HTML})))
    assert notebook_figures(nb) == Figures(widgets=("circuits-vis-1234-abcd", "widget-1"))
    assert notebook_figures(nb).circuitsvis == 2


def test_removed_cells_and_outputs_are_not_counted_hidden_ones_are():
    figure = display({"text/html": PLOTLY_HTML})
    nb = notebook(
        code_cell(figure, tags=["remove-cell"]),
        code_cell(figure, tags=["remove_cell"]),
        code_cell(figure, tags=["remove-output"]),
        code_cell(figure, tags=["remove_output"]),
        code_cell(figure, mystnb={"remove_code_outputs": True}),
        code_cell(figure, source="  \n"),  # myst-nb skips empty cells
        code_cell(figure, tags=["remove-input"]),
        code_cell(figure, tags=["hide-cell"]),
        code_cell(figure, tags=["hide-output"]),
        {"cell_type": "markdown", "source": PLOTLY_HTML, "metadata": {}},
    )
    assert notebook_figures(nb) == Figures(plotly=3)
    assert notebook_figures(nb, remove_outputs=True) == Figures()
