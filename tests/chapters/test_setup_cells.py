"""Every chapter's setup cell installs the book from the one repository URL of _config.yml, the
one the Colab launch buttons point at."""

import ast
import re

import jupytext
import pytest
import yaml

from lib import book

CONFIG = yaml.safe_load((book.ROOT / "_config.yml").read_text())
URL = CONFIG["repository"]["url"]
SLUGS = sorted(p.stem for p in book.CHAPTERS_DIR.glob("*.py"))


@pytest.mark.parametrize("slug", SLUGS)
def test_setup_cell_is_one_guarded_install_from_the_repository(slug):
    first = next(c for c in jupytext.read(book.source(slug)).cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", [])
    tree = ast.parse(first.source)
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Import", "Import", "If"], "the setup cell is the guarded install and nothing else"
    assert ast.unparse(tree.body[2].test) == "'google.colab' in sys.modules"
    (install,) = tree.body[2].body
    call = ast.unparse(install)
    assert call.startswith("subprocess.run([sys.executable, '-m', 'pip', 'install'"), call
    assert re.findall(r"https://[^\s\"']+", first.source) == [URL]
    assert f"'git+{URL}'" in call


def test_launch_buttons_open_the_same_repository():
    """jupyter-book builds each page's Colab link as colab_url/github/<owner>/<repo>/blob/<branch>/<path>
    from these settings; the page's notebook is committed at that path."""
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    owner_repo = URL.removeprefix("https://github.com/")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", owner_repo), URL
    for slug in book.toc_chapters():
        link = f"https://colab.research.google.com/github/{owner_repo}/blob/{CONFIG['repository']['branch']}/book/{slug}.ipynb"
        assert (book.ROOT / link.split(f"/blob/{CONFIG['repository']['branch']}/")[1]).exists(), link
