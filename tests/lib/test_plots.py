"""lib.plots: the figures carry exactly the values given, with the right axes."""

import numpy as np
import torch

from lib import plots


def test_head_heatmap_shows_every_head():
    values = torch.rand(3, 4)
    fig = plots.head_heatmap(values, "t", zmax=1.0)
    np.testing.assert_allclose(np.array(fig.data[0].z), values.numpy(), rtol=1e-6)
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"


def test_layer_position_map_labels_positions():
    values = torch.randn(2, 5)
    fig = plots.layer_position_map(values, range(10, 15), "t", "loss change")
    np.testing.assert_allclose(np.array(fig.data[0].z), values.numpy(), rtol=1e-6)
    assert list(fig.data[0].x) == list(range(10, 15))


def test_curves_one_line_per_series():
    fig = plots.curves([0, 1, 2], {"a": [1, 2, 3], "b": [3, 2, 1]}, "t", "step", "")
    assert [trace.name for trace in fig.data] == ["a", "b"]
    assert list(fig.data[1].y) == [3, 2, 1]


def test_stacked_curves_one_panel_per_group():
    fig = plots.stacked_curves(
        [0, 1], {"score": {"a": [0, 1]}, "loss": {"b": [2, 1], "c": [5, 4]}}, "t", "step"
    )
    assert [trace.name for trace in fig.data] == ["a", "b", "c"]
    assert [trace.yaxis for trace in fig.data] == ["y", "y2", "y2"]
    assert list(fig.data[2].y) == [5, 4]
    assert fig.layout.yaxis2.title.text == "loss" and fig.layout.xaxis2.title.text == "step"
