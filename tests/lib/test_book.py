"""The book's pipeline: chapters/<slug>.py -> papermill -> book/<slug>.ipynb, and the runner's
answer to every input: bad values, memory, output names, failures, signals, noise, no loopback.

Most cases run a tiny throwaway chapter (``TINY``, written to a temporary chapters folder) whose
kernel starts in about a second, so no test here executes a whole chapter."""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jupytext
import nbformat
import papermill
import pytest

from lib import book

SLUGS = book.toc_chapters()
TINY = """# %% [markdown]
# # Tiny

# %% tags=["parameters"]
N: int = 3  # [1, 10]: a number
MODE: str = "pass"  # {"pass", "claim", "die", "sleep", "memory"}: what the chapter does
NOTE: str = "x"  # any text

# %%
import os
import time
from pathlib import Path

from lib import params

params.validate(globals())
if MODE == "memory":
    from types import SimpleNamespace

    from lib import memory

    shape = dict(n_layers=2, d_model=64, n_heads=2, d_head=32, d_mlp=256, n_ctx=128, d_vocab=100)
    flags = dict(attn_only=False, gated_mlp=False, positional_embedding_type="standard")
    config = SimpleNamespace(**shape, **flags, d_vocab_out=100, n_key_value_heads=None)
    memory.check(config, "cpu", "float32", {"N": (10**6 * N, 128)})

# %%
if MODE == "claim":
    from lib.claims import check

    check("N is below 2", N < 2, N=N)
if MODE == "die":
    os.kill(os.getpid(), 9)
if MODE == "sleep":
    Path("started").write_text(str(os.getpid()))
    time.sleep(60)
print("N is", N)
"""
# Runs the CLI on the tiny chapter in a fresh process (argv after the folder).
RUNNER = """
import sys
from pathlib import Path
from lib import book
folder = Path(sys.argv[1])
book.CHAPTERS_DIR, book.OUTPUTS_DIR, book.BOOK_DIR = folder / "chapters", folder / "outputs", folder
book.main(sys.argv[2:])
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A chapters folder holding ``tiny.py``; the runner's folders moved under ``tmp_path``."""
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "tiny.py").write_text(TINY)
    monkeypatch.setattr(book, "CHAPTERS_DIR", tmp_path / "chapters")
    monkeypatch.setattr(book, "OUTPUTS_DIR", tmp_path / "outputs")
    monkeypatch.setattr(book, "BOOK_DIR", tmp_path)
    return tmp_path


def cli(folder, *argv, **kw):
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(folder), *argv],
        cwd=book.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


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


@pytest.mark.parametrize("slug", SLUGS)
def test_every_parameter_declares_type_range_and_help_as_papermill_reads_them(slug):
    """Each parameter has a type, a help text and (but for free text and booleans) what is
    allowed; papermill's own inspection (``--help-notebook``) reads the same names, types and
    defaults."""
    declared = book.parameters(slug)
    inspected = papermill.inspect_notebook(book.notebook(slug))
    assert list(inspected) == list(declared)
    for name, param in declared.items():
        assert param.help and (param.allowed or param.type in (str, bool)), name
        assert inspected[name]["inferred_type_name"] == param.type.__name__, name
        assert inspected[name]["help"].endswith(param.help), name
    assert "SEQ_LEN: int = 50  # an integer in [12, (n_ctx - 1) // 2]: " in book.describe_parameters(
        "induction_heads"
    )


def test_output_names_carry_parameter_names_in_any_order():
    """``-p BATCH 8`` and ``-p WINDOW 8`` differ; argument order does not matter; a long or
    odd value is shortened with a hash and still makes a file."""
    assert book.tag({"MODEL_NAME": "gpt2-small", "DEVICE": "cuda"}) == "DEVICE=cuda-MODEL_NAME=gpt2-small"
    assert book.tag({"DEVICE": "cuda", "MODEL_NAME": "gpt2-small"}) == book.tag(
        {"MODEL_NAME": "gpt2-small", "DEVICE": "cuda"}
    )
    assert book.tag({"BATCH": 8}) != book.tag({"WINDOW": 8})
    assert book.tag({}) == "defaults"
    long, odd = book.tag({"MODEL_NAME": "x" * 300}), book.tag({"MODEL_NAME": "org/model"})
    assert len(long) <= book.MAX_TAG and long != book.tag({"MODEL_NAME": "x" * 301})
    assert re.fullmatch(r"MODEL_NAME=org-model-[0-9a-f]{12}", odd) and odd != book.tag(
        {"MODEL_NAME": "org-model"}
    )


def test_unknown_chapter_is_refused_listing_the_chapters(tmp_path):
    with pytest.raises(ValueError, match="CHAPTER='nope' is not a chapter.*induction_heads"):
        book.execute("nope", tmp_path / "out.ipynb")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "slug, given, message",
    [
        ("induction_heads", [("SEQLEN", "3")], "unknown parameter.*SEQLEN.*allowed: MODEL_NAME"),
        (
            "induction_heads",
            [("SEED", "1.5")],
            r"SEED=1.5 is not allowed; expected an integer in \[0, 4294967295\]",
        ),
        ("induction_heads", [("SEED", "abc")], r"SEED='abc' is not allowed; expected an integer in \[0, "),
        ("induction_heads", [("SEED", "-1")], r"SEED=-1 is not allowed; expected an integer in \[0, "),
        ("induction_heads", [("TRAIN", "1")], "TRAIN=1 is not allowed; expected True or False"),
        (
            "induction_heads",
            [("BATCH", "100000")],
            r"BATCH=100000 is not allowed; expected an integer in \[10, 200\]",
        ),
        (
            "induction_heads",
            [("SEQ_LEN", "5")],
            r"SEQ_LEN=5 is not allowed; expected an integer in \[12, \(n_ctx",
        ),
        (
            "induction_heads",
            [("DEVICE", "tpu")],
            "DEVICE='tpu' is not allowed; expected one of 'auto', 'cpu', 'cuda'",
        ),
        (
            "induction_heads",
            [("DTYPE", "float8")],
            "DTYPE='float8' is not allowed; expected one of 'float32'",
        ),
        (
            "attention_sinks",
            [("WINDOW_LEN", "8")],
            r"WINDOW_LEN=8 is not allowed; expected 0 or an integer in \[32",
        ),
        ("attention_sinks", [("WINDOW", "3")], r"N_SINK=4 is not allowed; expected .*\[1, 3\] \(its default"),
        (
            "zoo",
            [("SAMPLE_TOKENS", "0")],
            r"SAMPLE_TOKENS=0 is not allowed; expected an integer in \[1, 1000\]",
        ),
    ],
)
def test_bad_values_are_refused_before_a_kernel_starts(tmp_path, slug, given, message):
    known = book.parameters(slug)
    with pytest.raises(ValueError, match=message):
        book.execute(slug, tmp_path / "out.ipynb", book.convert(known, given))
    assert not list(tmp_path.iterdir())


def test_values_are_typed_by_the_annotation():
    """A str parameter takes the text as given (the chapter then says whether it names a model);
    any other type reads it as a Python literal."""
    known = book.parameters("induction_heads")
    assert book.checked("induction_heads", known, book.convert(known, [("MODEL_NAME", "1")])) == {
        "MODEL_NAME": "1"
    }
    assert book.convert(known, [("TRAIN", "True"), ("SEED", "7")]) == {"TRAIN": True, "SEED": 7}
    with pytest.raises(ValueError, match="MODEL_NAME=1 is not allowed; expected a string"):
        book.execute("induction_heads", book.OUTPUTS_DIR / "never.ipynb", {"MODEL_NAME": 1})


def test_a_bad_value_is_one_line_in_seconds_with_nothing_heavy_imported(tmp_path):
    """The command line refuses each bad value with one line; neither torch, TransformerLens nor
    papermill is imported on that path (measured: about 2 s a refusal on a loaded 2-core machine)."""
    script = (
        "import sys, time\nfrom lib import book\nstart = time.time()\n"
        "for args in (['-p', 'SEED', '1.5'], ['-p', 'TRAIN', '1'], ['-p', 'SEQ_LEN', '5']):\n"
        "    try:\n        book.main(['run', 'induction_heads', *args])\n"
        "    except SystemExit as stop:\n        print(stop.code)\n"
        "print(sorted(m for m in ('torch', 'transformer_lens', 'papermill') if m in sys.modules))\n"
        "print(time.time() - start)"
    )
    start = time.time()
    done = subprocess.run([sys.executable, "-c", script], cwd=book.ROOT, capture_output=True, text=True)
    elapsed = time.time() - start
    *refusals, imported, inside = done.stdout.splitlines()
    assert [line.split(" is not allowed")[0] for line in refusals] == [
        "error: SEED=1.5",
        "error: TRAIN=1",
        "error: SEQ_LEN=5",
    ]
    assert imported == "[]" and done.stderr == ""
    assert elapsed < 15 and float(inside) < 6, (elapsed, inside)


def test_a_value_that_needs_the_model_is_refused_by_the_chapter_leaving_nothing(tmp_path):
    """SEQ_LEN beyond the model's context: the chapter's validation cell, before the model loads."""
    with pytest.raises(ValueError, match=r"^SEQ_LEN=1000 is not allowed; expected an integer in \[12, 63\]$"):
        book.execute("induction_heads", tmp_path / "out.ipynb", {"SEQ_LEN": 1000})
    assert not list(tmp_path.iterdir())


def test_a_run_too_big_for_memory_is_refused_in_seconds(tiny):
    start = time.time()
    with pytest.raises(
        ValueError, match=r"^not enough memory: this run needs about .* GiB free; lower N, or"
    ):
        book.execute("tiny", tiny / "outputs" / "big.ipynb", {"MODE": "memory"})
    assert time.time() - start < 30 and not (tiny / "outputs").exists()


def test_a_run_writes_its_result_readable_and_replaces_a_failed_one(tiny, capfd):
    """Mode 0644, no scratch file beside it, an older FAILED notebook removed, no kernel noise."""
    out = tiny / "outputs" / "tiny-N=2.ipynb"
    out.parent.mkdir()
    out.with_name("tiny-N=2.FAILED.ipynb").write_text("{}")
    assert book.execute("tiny", out, {"N": 2}) == out
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny-N=2.ipynb"]
    assert out.stat().st_mode & 0o777 == 0o644
    assert "N is 2" in nbformat.read(out, as_version=4).cells[-1].outputs[0].text
    assert capfd.readouterr().err == ""


def test_a_failed_run_keeps_its_notebook_names_the_claim_and_keeps_the_older_result(tiny, capfd):
    older = tiny / "outputs" / "tiny-MODE=claim.ipynb"
    older.parent.mkdir()
    older.write_text("older result")
    with pytest.raises(SystemExit) as stop:
        book.main(["run", "tiny", "-p", "MODE", "claim"])
    failed = older.with_name("tiny-MODE=claim.FAILED.ipynb")
    assert stop.value.code == (
        f"error: chapter 'tiny': a claim failed in cell [4]: N is below 2: does not hold (N=3) "
        f"(notebook kept for inspection: {failed})"
    )
    assert older.read_text() == "older result"
    cells = nbformat.read(failed, as_version=4).cells
    assert any(o.get("ename") == "ClaimError" for c in cells if c.cell_type == "code" for o in c.outputs)
    err = capfd.readouterr().err
    assert "TCP without encryption" not in err and "KeyboardInterrupt" not in err, err


def test_a_killed_kernel_is_one_line(tiny):
    with pytest.raises(book.ChapterError, match=r"^chapter 'tiny': the kernel died \(killed by the system"):
        book.execute("tiny", tiny / "outputs" / "died.ipynb", {"MODE": "die"})
    assert [p.name for p in (tiny / "outputs").iterdir()] == ["died.FAILED.ipynb"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_stops_its_kernel_and_leaves_nothing(tiny, signum):
    """SIGTERM (a timeout, a cancelled job) and Ctrl-C (SIGINT to the terminal's process group):
    one line, the kernel stopped, no partial notebook where results live, an older result kept."""
    older = tiny / "outputs" / "tiny-MODE=sleep.ipynb"
    older.parent.mkdir()
    older.write_text("older result")
    run = cli(tiny, "run", "tiny", "-p", "MODE", "sleep", start_new_session=True)
    marker = tiny / "started"
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and run.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), run.communicate()
    time.sleep(2)  # the runner is now waiting on the cell (slow under load)
    os.killpg(run.pid, signum)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 128 + signum
    name = signal.Signals(signum).name
    assert err == f"interrupted ({name}): stopped the kernel; no notebook written, results unchanged\n"
    assert [p.name for p in older.parent.iterdir()] == [older.name] and older.read_text() == "older result"
    kernel = int(marker.read_text())
    for _ in range(300):  # up to 30 s on a loaded machine
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"kernel {kernel} still running")


def test_a_run_needs_no_loopback_network(tiny):
    """In a network namespace without loopback (``unshare -n``), where a TCP kernel never answers
    and papermill times out after 60 s, the kernel's IPC sockets still work."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not available or not permitted here")
    start = time.time()
    run = subprocess.run(
        [unshare, "-n", sys.executable, "-c", RUNNER, str(tiny), "run", "tiny", "-p", "N", "4"],
        cwd=book.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert (tiny / "outputs" / "tiny-N=4.ipynb").exists() and time.time() - start < 30


FIGURES = """# %% tags=["parameters"]
N: int = 3  # [1, 10]: a number

# %%
import circuitsvis as cv
import plotly.express as px
import torch

from lib import env, figures

env.setup(0)

# %%
px.line(x=list(range(N)), y=list(range(N)))

# %%
figures.Widget(cv.attention.attention_heads(attention=torch.ones(1, N, N).tril(), tokens=list("abc")[:N]))

# %%
px.line(x=list(range(N)), y=list(range(N)))
"""


def test_the_same_run_twice_writes_the_same_bytes(tiny):
    """Cell ids, figure and widget ids derive from the notebook, not from chance: re-executing an
    unchanged chapter leaves ``git status`` clean. Ids are digests of the cell's source, numbered
    where two cells share one."""
    (tiny / "chapters" / "figures.py").write_text(FIGURES)
    first = book.execute("figures", tiny / "run.ipynb", {"N": 3}).read_bytes()
    assert book.execute("figures", tiny / "run.ipynb", {"N": 3}).read_bytes() == first
    nb = nbformat.read(tiny / "run.ipynb", as_version=4)
    ids = [c.id for c in nb.cells]
    assert (
        ids[-1] == f"{ids[-3]}-2" and ids[-3] == hashlib.sha1(nb.cells[-3].source.encode()).hexdigest()[:12]
    )
    html = [
        o.data["text/html"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert ['id="figure-0"' in html[0], 'id="widget-0"' in html[1], 'id="figure-1"' in html[2]] == [True] * 3


HTML_TAGS = {"a", "b", "br", "details", "div", "em", "i", "img", "p", "span", "sub", "summary", "sup"}


def markdown_texts(nb):
    """The book's Markdown: markdown cells and text/markdown outputs."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            yield cell.source
        for output in cell.get("outputs", []):
            yield output.get("data", {}).get("text/markdown", "")


@pytest.mark.parametrize("page", [f"{s}.ipynb" for s in SLUGS] + ["intro.md", "benchmarks.md"])
def test_no_token_in_the_books_markdown_is_taken_for_an_html_tag(page):
    """``<bos>`` outside code is read as an (unknown) HTML tag and vanishes from the page: tokens
    in angle brackets are escaped or in backticks."""
    path = book.ROOT / page if page == "intro.md" else book.BOOK_DIR / page
    texts = (
        markdown_texts(nbformat.read(path, as_version=4)) if page.endswith(".ipynb") else [path.read_text()]
    )
    for text in texts:
        prose = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
        tags = {m for m in re.findall(r"</?([A-Za-z][\w-]*)[^>]*>", prose) if m.lower() not in HTML_TAGS}
        assert not tags, f"{page}: <{'>, <'.join(sorted(tags))}> would vanish from the page"
