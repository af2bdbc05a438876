"""Executing chapters: jupytext source -> papermill -> an executed notebook, written atomically.

``make book`` runs every chapter of ``_toc.yml`` on its defaults into ``book/<slug>.ipynb``;
``make run CHAPTER=slug PARAMS="-p NAME VALUE ..."`` re-runs one chapter with new parameters
into ``outputs/<slug>-<tag>.ipynb``. Both come here::

    python -m lib.book build                      # every chapter, defaults, into book/
    python -m lib.book run SLUG -p MODEL_NAME gpt2-small -p DEVICE cuda
    python -m lib.book params SLUG                # the chapter's parameters and their help

Nothing heavy happens before the slug and parameter names are checked, and a chapter that
fails leaves no notebook behind (papermill writes to a temp file that is renamed only on
success). Timestamps are stripped so re-running changes only what changed.
Introduced with the book's pipeline (README.md); every chapter goes through it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS_DIR, BOOK_DIR, OUTPUTS_DIR = ROOT / "chapters", ROOT / "book", ROOT / "outputs"
TIMING_KEYS = ("start_time", "end_time", "duration")


class ChapterError(RuntimeError):
    """A chapter raised while executing: the cell, the exception and its message."""


def toc_chapters() -> list[str]:
    """Slugs of the executed chapters, in ``_toc.yml`` order (every ``book/<slug>`` entry that
    has a ``chapters/<slug>.py`` source)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [
        f.split("/", 1)[1] for f in files if f.startswith("book/") and source(f.split("/", 1)[1]).exists()
    ]


def source(slug: str) -> Path:
    return CHAPTERS_DIR / f"{slug}.py"


def check_slug(slug: str) -> Path:
    """The source of chapter ``slug``, or a ``ValueError`` listing the chapters."""
    path = source(slug)
    if not re.fullmatch(r"[a-z0-9_]+", slug) or not path.exists():
        known = sorted(p.stem for p in CHAPTERS_DIR.glob("*.py"))
        raise ValueError(f"CHAPTER={slug!r} is not a chapter; the chapters are: {', '.join(known)}")
    return path


def notebook(slug: str) -> nbformat.NotebookNode:
    """The chapter's source as an unexecuted notebook with a python3 kernelspec."""
    nb = jupytext.read(check_slug(slug))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def parameters(slug: str) -> dict[str, dict]:
    """The chapter's tagged parameters: name -> {inferred_type_name, default, help}."""
    return papermill.inspect_notebook(notebook(slug))


def describe_parameters(slug: str) -> str:
    """Human-readable list of a chapter's parameters, for ``make run``'s help."""
    lines = [f'Parameters of chapter {slug!r} (pass as PARAMS="-p NAME VALUE ..."):']
    for name, p in parameters(slug).items():
        lines.append(f"  {name}: {p['inferred_type_name']} = {p['default']}  # {p['help']}")
    return "\n".join(lines)


def parse_value(text: str) -> object:
    """A command-line parameter value: int, float, bool, None, or else the string itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


def strip_timing(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop execution timestamps (papermill's and nbclient's) so diffs show only content."""
    for key in TIMING_KEYS:
        nb.metadata.get("papermill", {}).pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for key in TIMING_KEYS:
            cell.metadata.get("papermill", {}).pop(key, None)
    return nb


def execute(slug: str, output: Path, params: dict[str, object] | None = None) -> Path:
    """Execute chapter ``slug`` with ``params`` into ``output``, atomically.

    The kernel's working directory is ``book/`` (where nbval runs the notebooks too). Unknown
    parameter names raise before the kernel starts; a failing chapter raises and leaves no file.
    """
    params = params or {}
    src = check_slug(slug)
    nb = notebook(slug)
    known = papermill.inspect_notebook(nb)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for chapter {slug!r}; allowed: {', '.join(known)}"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", prefix=f".{output.stem}-", dir=output.parent)
    os.close(fd)
    try:
        papermill.execute_notebook(
            nb,
            tmp,
            parameters=params,
            kernel_name="python3",
            cwd=str(BOOK_DIR),
            progress_bar=False,
            log_output=False,
        )
        done = nbformat.read(tmp, as_version=4)
        done.metadata.papermill.update(
            input_path=str(src.relative_to(ROOT)),
            output_path=str(
                output.resolve().relative_to(ROOT) if output.resolve().is_relative_to(ROOT) else output
            ),
        )
        nbformat.write(strip_timing(done), tmp)
        os.replace(tmp, output)
    except papermill.PapermillExecutionError as err:
        if err.ename == "ClaimError":  # a check cell (lib.claims.check): the sentence says which claim broke
            raise ChapterError(
                f"chapter {slug!r}: a claim failed in cell [{err.exec_count}]: {err.evalue}"
            ) from None
        raise ChapterError(
            f"chapter {slug!r} failed in cell [{err.exec_count}]: {err.ename}: {err.evalue}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return output


def tag(params: dict[str, object]) -> str:
    """A file-name tag for a parameter set, e.g. ``gpt2-small-cuda``."""
    text = "-".join(str(v) for v in params.values()) or "defaults"
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.book", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="execute every chapter of _toc.yml on its defaults into book/")
    run = sub.add_parser("run", help="execute one chapter with parameters into outputs/")
    run.add_argument("slug")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    show = sub.add_parser("params", help="list a chapter's parameters")
    show.add_argument("slug")
    args = parser.parse_args(argv)
    os.environ.setdefault("IBE_DISABLE_TQDM", "1")
    try:
        if args.command == "build":
            for slug in toc_chapters():
                print(f"executing chapters/{slug}.py -> book/{slug}.ipynb", flush=True)
                execute(slug, BOOK_DIR / f"{slug}.ipynb")
        elif args.command == "params":
            print(describe_parameters(args.slug))
        else:
            params = {name: parse_value(value) for name, value in args.parameter}
            print(describe_parameters(args.slug), flush=True)
            out = execute(args.slug, OUTPUTS_DIR / f"{args.slug}-{tag(params)}.ipynb", params)
            print(f"wrote {out}")
    except (ValueError, ChapterError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
