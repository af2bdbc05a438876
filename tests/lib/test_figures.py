"""lib.figures: the book's plotly renderer and circuitsvis widgets write HTML that loads nothing
from a CDN, draws the same figure as plotly's and circuitsvis's own output (their JSON decoded
and compared), and names its elements by a count, so two runs write identical notebooks. That
the HTML draws in a browser is tests/site/'s job."""

import itertools
import json
import re
import sys

import circuitsvis as cv
import plotly.express as px
import plotly.io as pio
import pytest
import torch

from lib import env, figures


def newplot_arguments(html: str) -> list:
    """The id, data and layout passed to the ``Plotly.newPlot`` call in a figure's HTML."""
    decoder, at, values = json.JSONDecoder(), html.index("Plotly.newPlot(") + len("Plotly.newPlot("), []
    for _ in range(3):
        at = re.compile(r"[\s,]*").match(html, at).end()
        value, at = decoder.raw_decode(html, at)
        values.append(value)
    return values


@pytest.fixture
def figure():
    return px.line(x=[0, 1, 2], y=[3.0, 1.0, 2.0], title="a curve")


def test_the_book_renderer_draws_the_figure_with_the_pages_plotly_and_counted_ids(figure):
    renderer = figures.BookRenderer()
    first, second = (renderer.to_mimebundle(figure.to_dict())["text/html"] for _ in range(2))
    reference = json.loads(pio.to_json(figure))
    for html, n in ((first, 0), (second, 1)):
        div_id, data, layout = newplot_arguments(html)
        assert div_id == f"figure-{n}" and f'<div id="figure-{n}" class="plotly-graph-div"' in html
        assert data == reference["data"] and layout == reference["layout"]
        assert "<script src" not in html and "require" not in html and "cdn" not in html.lower()


def test_setup_selects_the_book_renderer_beside_plotlys_mimetype(figure, monkeypatch):
    env.setup(0)
    bundle = pio.renderers._build_mime_bundle(figure.to_dict())
    assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html"}
    assert 'id="figure-0"' in bundle["text/html"]
    monkeypatch.setitem(sys.modules, "google.colab", object())
    env.setup(0)
    assert pio.renderers.default == "colab" and figures.Widget.colab
    monkeypatch.delitem(sys.modules, "google.colab")
    env.setup(0)
    assert not figures.Widget.colab
    torch.set_grad_enabled(True)  # env.setup turns gradients off for the whole process


def attention_heads(n_heads: int = 2):
    tokens = ["a", "b", "c"]
    pattern = torch.rand(n_heads, 3, 3, generator=torch.Generator().manual_seed(n_heads)).tril()
    return cv.attention.attention_heads(attention=pattern, tokens=tokens), pattern, tokens


def test_widgets_carry_the_bundle_once_and_circuitsvis_props(monkeypatch):
    monkeypatch.setattr(figures.Widget, "count", itertools.count())
    monkeypatch.setattr(figures.Widget, "bundle_sent", False)
    monkeypatch.setattr(figures.Widget, "colab", False)
    first, second = (figures.Widget(attention_heads(n)[0]) for n in (2, 3))
    html = [w._repr_html_() for w in (first, second)]
    assert "var CircuitsVis=" in html[0] and "var CircuitsVis=" not in html[1]
    assert "unpkg" not in "".join(html) and "circuits-vis-" not in "".join(html)
    for n, (text, widget) in enumerate(zip(html, (first, second))):
        call = re.search(
            r'CircuitsVis\.render\("(widget-\d+)", CircuitsVis\.(\w+), (.*)\)</script>$', text, re.DOTALL
        )
        assert call is not None and call[1] == f"widget-{n}" and call[2] == "AttentionHeads"
        assert f'<div id="widget-{n}"' in text
        props = json.loads(call[3])
        rendered, pattern, tokens = attention_heads(n + 2)
        assert props["tokens"] == tokens
        torch.testing.assert_close(torch.tensor(props["attention"]), pattern)
        assert props == json.loads(widget.props)


def test_on_colab_a_widget_is_circuitsvis_own_html(monkeypatch):
    monkeypatch.setattr(figures.Widget, "colab", True)
    rendered = attention_heads()[0]
    assert figures.Widget(rendered)._repr_html_() == rendered._repr_html_()


def test_a_widget_refuses_html_that_is_not_circuitsvis():
    class Other:
        cdn_src = "<div>no call here</div>"

    with pytest.raises(ValueError, match="not circuitsvis output"):
        figures.Widget(Other())
