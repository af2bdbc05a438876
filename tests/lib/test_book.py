"""The book's pipeline: chapters/<slug>.py -> papermill -> book/<slug>.ipynb."""

import jupytext
import nbformat
import pytest

from lib import book

SLUGS = book.toc_chapters()


def code_and_markdown(nb):
    return [
        (c.cell_type, c.source) for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])
    ]


def test_toc_lists_every_chapter_source():
    assert {path.stem for path in book.CHAPTERS_DIR.glob("*.py")} == set(SLUGS)


@pytest.mark.parametrize("slug", SLUGS)
def test_book_notebook_is_in_sync_with_its_source(slug):
    """Every executed notebook has the cell sources of the current chapter source and was
    written by papermill without error: stale or hand-edited notebooks fail."""
    executed = nbformat.read(book.BOOK_DIR / f"{slug}.ipynb", as_version=4)
    assert code_and_markdown(executed) == code_and_markdown(jupytext.read(book.source(slug))), (
        f"book/{slug}.ipynb is stale: regenerate it with `make book`"
    )
    meta = executed.metadata["papermill"]
    assert meta["input_path"] == f"chapters/{slug}.py" and meta["exception"] is None
    assert all("start_time" not in c.metadata.get("papermill", {}) for c in executed.cells)
    assert all(c.execution_count is not None for c in executed.cells if c.cell_type == "code"), (
        "unexecuted cells"
    )


def test_parameters_have_types_defaults_and_help():
    params = book.parameters("induction_heads")
    assert {"MODEL_NAME", "DEVICE", "DTYPE", "SEED", "SEQ_LEN", "BATCH", "TRAIN"} <= set(params)
    assert all(p["help"] and p["inferred_type_name"] != "None" for p in params.values())
    assert "SEQ_LEN: int = 50" in book.describe_parameters("induction_heads")


def test_parse_value_and_tag():
    assert [book.parse_value(v) for v in ("3", "0.5", "True", "None", "gpt2-small")] == [
        3,
        0.5,
        True,
        None,
        "gpt2-small",
    ]
    assert book.tag({"MODEL_NAME": "gpt2-small", "DEVICE": "cuda"}) == "gpt2-small-cuda"
    assert book.tag({}) == "defaults"


def test_unknown_chapter_is_refused_listing_the_chapters(tmp_path):
    with pytest.raises(ValueError, match="CHAPTER='nope' is not a chapter.*induction_heads"):
        book.execute("nope", tmp_path / "out.ipynb")
    assert not list(tmp_path.iterdir())


def test_unknown_parameter_is_refused_before_running(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter.*SEQLEN.*allowed: MODEL_NAME"):
        book.execute("induction_heads", tmp_path / "out.ipynb", {"SEQLEN": 3})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "params, message",
    [
        ({"SEQ_LEN": 1000}, r"SEQ_LEN=1000 is not allowed; expected an integer in \[12, 63\]"),
        ({"BATCH": 5}, r"BATCH=5 is not allowed; expected an integer in \[10, 200\]"),
        ({"MODEL_NAME": "gpt-7"}, "MODEL_NAME='gpt-7' is neither a zoo organism"),
        ({"DEVICE": "tpu"}, "DEVICE='tpu' is not a device; allowed: auto, cpu, cuda"),
        ({"DTYPE": "float8"}, "DTYPE='float8' is not supported"),
    ],
)
def test_bad_parameters_fail_fast_without_output(tmp_path, params, message):
    """A bad parameter stops the chapter in its validation cell, with a message naming it, and
    leaves no notebook behind."""
    out = tmp_path / "out.ipynb"
    with pytest.raises(book.ChapterError, match=message):
        book.execute("induction_heads", out, params)
    assert not list(tmp_path.iterdir())
