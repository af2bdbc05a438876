"""The Colab path: each chapter's launch button opens ``book/<slug>.ipynb`` on Colab, whose first
code cell (tagged ``remove-cell``) pip-installs the book from its repository when ``google.colab``
is imported. Colab's kernel already has torch (a CUDA build: replacing it means gigabytes), numpy,
pandas, IPython and ipykernel, at versions of its own, not requirements.txt's pins.

This test builds that situation and runs the notebook the way a reader would:

1. a fresh virtual environment with torch (requirements.txt's pin, the CPU wheel on this machine's
   disk) and numpy, pandas, IPython and ipykernel at Colab's versions preinstalled;
2. a local clone of this repository (its HEAD plus the working tree's uncommitted changes, so the
   test sees what the other tests see), whose URL replaces the repository's in the notebook's own
   setup cell: pip builds and installs the book from it, non-editable, as from GitHub;
3. in a Jupyter kernel of that environment, started outside the repository, with ``google.colab``
   faked: the setup cell, then the residual-stream chapter's cells up to its first subheading (the
   parameters, the model's loading, and the first section's measurements and their check: about
   25 s; the next cell alone takes over a minute).

It checks that the install kept the preinstalled torch, numpy, pandas, IPython and ipykernel
(pyproject.toml names only what Colab lacks or needs newer); that ``lib`` was imported from the
installed package, whose organisms are complete (every file their manifests list, with its hash:
the wheel ships them); and that the section printed and glued exactly what the committed notebook
shows.

The one thing added to Colab's conditions: pip is held to the preinstalled torch by a constraint,
so that a dependency wanting another torch fails the install at once instead of downloading CUDA
builds. pip does not byte-compile what it installs (``PIP_COMPILE=0``), which only saves time.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import yaml
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SLUG = "residual_stream"
TORCH = re.search(r"^torch==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
COLAB = {"numpy": "2.0.2", "pandas": "2.2.2", "ipython": "7.34.0", "ipykernel": "6.17.1"}  # Colab's in 2025
GLUE = "application/papermill.record/text/plain"
SHM = "/dev/shm"
# what the setup cell and libraries look for: an imported google.colab, with a module spec (accelerate
# asks importlib.util.find_spec, which refuses a module without one)
FAKE_COLAB = """import sys
from importlib.machinery import ModuleSpec
from importlib.util import module_from_spec

sys.modules["google.colab"] = module_from_spec(ModuleSpec("google.colab", None))"""
# the last cell: every organism's files (weights, tokenizer, artifacts) against its manifest, and
# where lib was imported from
SHIPPED = """import lib
from lib import zoo

for name in zoo.ORGANISMS:
    zoo.verify(name)
print(lib.__file__)"""


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def clone(dest: Path) -> None:
    """Clone the repository into ``dest`` and commit there the working tree's edited, new and
    deleted files (git-ignored ones left out)."""
    git("clone", "--quiet", str(ROOT), str(dest))
    for path in filter(
        None, git("ls-files", "-z", "--modified", "--others", "--exclude-standard").split("\0")
    ):
        if (ROOT / path).exists():
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, dest / path)
        else:  # deleted
            (dest / path).unlink(missing_ok=True)
    git("add", "--all", cwd=dest)
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
    git(*identity, "commit", "--quiet", "--allow-empty", "--message", "work tree", cwd=dest)


def versions(python: Path, names: list[str]) -> dict[str, str]:
    """The version of each distribution in ``names`` installed in the environment of ``python``."""
    code = f"import importlib.metadata as m, json; print(json.dumps({{n: m.version(n) for n in {names!r}}}))"
    return json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(
        o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stdout"
    )


def glued(cells: list[nbformat.NotebookNode]) -> dict[str, str]:
    """Every value the cells glued, by name."""
    return {
        o.metadata["scrapbook"]["name"]: o.data[GLUE]
        for c in cells
        for o in c.get("outputs", [])
        if o.output_type == "display_data" and GLUE in o.get("data", {})
    }


@pytest.fixture(scope="module")
def colab() -> Iterator[dict]:
    """:func:`build_and_run` in a temporary folder, in memory where the machine has a tmpfs: the
    environment is 45,000 files (1.7 GB), which took minutes to write, and as long to remove, on
    the disk of this project's machines (CI's too)."""
    in_memory = os.path.isdir(SHM) and shutil.disk_usage(SHM).free > 4 * 2**30  # room for 1.7 GB twice
    with tempfile.TemporaryDirectory(prefix="colab-", dir=SHM if in_memory else None) as folder:
        yield build_and_run(Path(folder))


def build_and_run(tmp: Path) -> dict:
    """Build the Colab-like environment in ``tmp`` and run the notebook's first cells there; gives
    the committed cells, the executed ones, where ``lib`` came from, the environment's python and
    the versions before and after the install."""
    venv, repo, work = tmp / "venv", tmp / "repo", tmp / "content"
    python = venv / "bin" / "python"
    constraint = tmp / "constraints.txt"
    constraint.write_text(f"torch=={TORCH}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PIP_CONSTRAINT": str(constraint), "PIP_COMPILE": "0", "TMPDIR": str(tmp)}

    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    preinstall = [f"torch=={TORCH}", *(f"{name}=={version}" for name, version in COLAB.items())]
    subprocess.run([python, "-m", "pip", "install", "-q", *preinstall], check=True, env=env)
    before = versions(python, ["torch", *COLAB])
    clone(repo)
    work.mkdir()

    book = nbformat.read(repo / "book" / f"{SLUG}.ipynb", as_version=4)
    setup = next(i for i, c in enumerate(book.cells) if c.cell_type == "code")
    assert "remove-cell" in book.cells[setup].metadata.get("tags", [])
    url = yaml.safe_load((repo / "_config.yml").read_text())["repository"]["url"]
    assert book.cells[setup].source.count(f"git+{url}") == 1, book.cells[setup].source
    headings = [i for i, c in enumerate(book.cells) if c.cell_type == "markdown" and c.source.startswith("#")]
    first_section = next(i for i in headings if book.cells[i].source.startswith("## "))
    committed = book.cells[setup + 1 : next(i for i in headings if i > first_section)]

    run = nbformat.v4.new_notebook(metadata=book.metadata)
    run.cells = [
        nbformat.v4.new_code_cell(FAKE_COLAB),
        nbformat.v4.new_code_cell(book.cells[setup].source.replace(f"git+{url}", f"git+file://{repo}")),
        *(nbformat.v4.new_code_cell(c.source) for c in committed if c.cell_type == "code"),
        nbformat.v4.new_code_cell(SHIPPED),
    ]
    kernels = tmp / "kernels"
    (kernels / "colab").mkdir(parents=True)
    (kernels / "colab" / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "language": "python",
            }
        )
    )
    km = AsyncKernelManager(
        kernel_name="colab",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
        transport="ipc",  # sockets in tmp, as lib.book's kernels: no TCP port needed
        connection_file=str(tmp / "kernel.json"),
    )
    NotebookClient(
        run,
        km=km,
        timeout=1200,  # per cell: the install takes minutes
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
        resources={"metadata": {"path": str(work)}},  # the kernel's working directory
    ).execute(env=env)
    return {
        "committed": [c for c in committed if c.cell_type == "code"],
        "executed": run.cells[2:-1],
        "lib_file": stdout(run.cells[-1]).strip(),
        "python": python,
        "before": before,
        "after": versions(python, ["torch", *COLAB, "interpretability-by-experiment"]),
    }


def test_colab_versions_are_not_the_pins():
    """The preinstalled versions differ from requirements.txt's, or the test would prove nothing."""
    pins = dict(re.findall(r"^([\w-]+)==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M))
    assert all(pins[name] != version for name, version in COLAB.items()), (pins, COLAB)


def test_install_keeps_colab_packages(colab):
    """The setup cell installed the book and changed none of the preinstalled packages."""
    assert colab["before"]["torch"].startswith(TORCH), colab["before"]
    assert {name: colab["before"][name] for name in COLAB} == COLAB
    after = colab["after"]
    assert after.pop("interpretability-by-experiment")
    assert after == colab["before"]


def test_lib_comes_from_the_installed_wheel(colab):
    """The kernel imported ``lib`` from the environment's site-packages (so the organisms it loaded
    and verified came from the wheel), not from a source tree."""
    site = Path(colab["lib_file"]).resolve()
    assert site.is_relative_to(colab["python"].parent.parent.resolve()), site
    assert "site-packages" in site.parts and not site.is_relative_to(ROOT), site


def test_first_section_matches_the_book(colab):
    """Every printed line and glued value of the section is the committed notebook's."""
    assert [stdout(c) for c in colab["executed"]] == [stdout(c) for c in colab["committed"]]
    assert glued(colab["executed"]) == glued(colab["committed"])
    assert glued(colab["committed"]), "the section glues values to compare"
