"""Root pytest configuration.

nbval compares the outputs of the executed notebooks in book/ with a fresh run. Outputs that
differ on every run by design are not compared: HTML and JavaScript (plotly div ids and
circuitsvis bundles are random), plotly JSON, widget state. Progress bars are off.
"""

import os

os.environ["IBE_DISABLE_TQDM"] = "1"

SKIPPED_OUTPUTS = (
    "text/html",
    "application/javascript",
    "application/vnd.plotly.v1+json",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
)


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += SKIPPED_OUTPUTS
