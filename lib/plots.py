"""Plotly figures the chapters share: per-head heatmaps, layer x position maps, curves.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.express as px
import plotly.graph_objects as go
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor


def head_heatmap(
    values: Float[Tensor, "n_layers n_heads"],
    title: str,
    zmid: float | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """One cell per head: layers down, heads across."""
    values = values.detach().float().cpu()
    kwargs = dict(color_continuous_scale="RdBu", color_continuous_midpoint=zmid) if zmid is not None else {}
    fig = px.imshow(
        values.numpy(),
        labels=dict(x="head", y="layer", color=""),
        title=title,
        aspect="auto",
        text_auto=".2f" if values.numel() <= 64 else False,
        zmax=zmax,
        **kwargs,
    )
    return fig.update_layout(height=200 + 25 * values.shape[0])


def layer_position_map(
    values: Float[Tensor, "n_layers pos"], positions: Sequence[int], title: str, color: str
) -> go.Figure:
    """A layer x position map, e.g. the loss change from patching each (layer, position)."""
    values = values.detach().float().cpu()
    fig = px.imshow(
        values.numpy(),
        x=list(positions),
        labels=dict(x="position", y="layer", color=color),
        title=title,
        aspect="auto",
        color_continuous_scale="RdBu",
        color_continuous_midpoint=0.0,
    )
    return fig.update_layout(height=200 + 25 * values.shape[0])


def curves(
    x: Sequence[float], ys: dict[str, Sequence[float]], title: str, xlabel: str, ylabel: str
) -> go.Figure:
    """Several named lines over a shared x axis."""
    fig = go.Figure([go.Scatter(x=list(x), y=list(y), name=name, mode="lines") for name, y in ys.items()])
    return fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel)


def stacked_curves(
    x: Sequence[float], panels: dict[str, dict[str, Sequence[float]]], title: str, xlabel: str
) -> go.Figure:
    """Panels of named lines stacked over one shared x axis; ``panels`` maps each panel's y-axis
    title to its lines (e.g. scores above, losses below, over training steps)."""
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for row, (ylabel, ys) in enumerate(panels.items(), start=1):
        for name, y in ys.items():
            fig.add_trace(go.Scatter(x=list(x), y=list(y), name=name, mode="lines"), row=row, col=1)
        fig.update_yaxes(title_text=ylabel, row=row, col=1)
    fig.update_xaxes(title_text=xlabel, row=len(panels), col=1)
    return fig.update_layout(title=title, height=250 + 220 * len(panels))
