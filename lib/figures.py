"""How figures and widgets reach the page: plotly figures and circuitsvis widgets whose HTML needs
no network, with element ids that are the same on every run.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).

Plotly's notebook renderers load plotly.js from a CDN and name each figure's ``<div>`` by a random
UUID, so the rendered book showed no figure offline and every run rewrote every figure. The
book's renderer writes each figure's HTML for a page that already has plotly.js (the book's
Sphinx extension, ``book/_ext/offline_assets.py``, adds the copy the plotly package ships to every
page that holds a figure) beside plotly's own JSON mimetype, which JupyterLab, VS Code and nbval
read; on Colab :func:`lib.env.setup` keeps plotly's Colab renderer. circuitsvis inlines its whole
1.5 MB bundle in every widget when offline and imports it from unpkg when online: the book's
widgets carry the bundle once per kernel, in the first widget shown, and later widgets use it
(on Colab, where each output is its own frame, circuitsvis's own HTML).
"""

from __future__ import annotations

import itertools
import re
from importlib import resources

from circuitsvis.utils.render import RenderedHTML
from plotly.io import to_html
from plotly.io._base_renderers import MimetypeRenderer


class BookRenderer(MimetypeRenderer):
    """Plotly figures as ``<div id="figure-N">`` and a script that draws it with the page's global
    ``Plotly``; N counts the figures of this renderer (one per kernel)."""

    def __init__(self) -> None:
        self.count = itertools.count()

    def to_mimebundle(self, fig_dict: dict) -> dict[str, str]:
        html = to_html(
            fig_dict,
            include_plotlyjs=False,
            full_html=False,
            default_width="100%",
            default_height=525,
            div_id=f"figure-{next(self.count)}",
            validate=False,
        )
        return {"text/html": html}


_CALL = re.compile(r'render\(\s*"circuits-vis-[^"]*",\s*(\w+),\s*(.*?)\s*\)\s*</script>\s*$', re.DOTALL)


class Widget:
    """A circuitsvis visualisation as HTML for the book: ``<div id="widget-N">`` (N counts the
    kernel's widgets) and a classic script that renders it with the global ``CircuitsVis``
    bundle, which the first widget the kernel shows defines. On Colab, where every output is its
    own frame, circuitsvis's own HTML."""

    count = itertools.count()
    bundle_sent = False
    colab = False  # set by lib.env.setup

    def __init__(self, rendered: RenderedHTML) -> None:
        found = _CALL.search(rendered.cdn_src)
        if found is None:
            raise ValueError("not circuitsvis output: no render(id, Component, props) call in its HTML")
        self.rendered = rendered
        self.component, self.props = found.groups()
        self.id = f"widget-{next(Widget.count)}"

    def __repr__(self) -> str:
        return f"circuitsvis {self.component} ({self.id})"

    def _repr_html_(self) -> str:
        if Widget.colab:
            return self.rendered._repr_html_()
        bundle = ""
        if not Widget.bundle_sent:
            source = resources.files("circuitsvis") / "dist" / "cdn" / "iife.js"
            bundle = f"<script>{source.read_text(encoding='utf-8').replace('</script>', '')}</script>\n"
            Widget.bundle_sent = True
        return (
            f'{bundle}<div id="{self.id}" class="circuitsvis-widget" style="margin: 15px 0;"></div>\n'
            f'<script>CircuitsVis.render("{self.id}", CircuitsVis.{self.component}, {self.props})</script>'
        )
