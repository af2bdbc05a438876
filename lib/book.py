"""Executing chapters: jupytext source -> papermill -> an executed notebook, written atomically.

``make book`` runs every chapter of ``_toc.yml`` on its defaults into ``book/<slug>.ipynb``;
``make run CHAPTER=slug PARAMS="-p NAME VALUE ..."`` re-runs one chapter with new parameters
into ``outputs/<slug>-<NAME=value-...>.ipynb``. Both come here::

    python -m lib.book build                      # every chapter, defaults, into book/
    python -m lib.book run SLUG -p MODEL_NAME gpt2-small -p DEVICE cuda
    python -m lib.book params SLUG                # the chapter's parameters and what is allowed

Before a kernel starts, the slug, the parameter names and every value are checked against the
chapter's parameters cell (:mod:`lib.params`: types, ranges, choices; in about a second, with
nothing heavy imported); what depends on the model (its context, the memory a run needs) the
chapter's validation cell refuses in seconds, before the model loads. Papermill writes into a
scratch folder outside the results; a run that succeeds replaces ``<name>.ipynb`` (mode 0644) in
one rename, a run that fails keeps its notebook as ``<name>.FAILED.ipynb`` and leaves an older
result alone, and an interrupted run (Ctrl-C, SIGTERM) writes nothing. The kernel is quiet (its
log shows only critical errors) and talks over IPC sockets, so it needs no network, not even
loopback. Every failure is one line. Timestamps are stripped so re-running changes only what
changed. Introduced with the book's pipeline (README.md); every chapter goes through it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
import yaml
from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Config

from lib import params as param_specs

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS_DIR, BOOK_DIR, OUTPUTS_DIR = ROOT / "chapters", ROOT / "book", ROOT / "outputs"
TIMING_KEYS = ("start_time", "end_time", "duration")
MAX_TAG = 100  # characters of an output name's parameter part before it is shortened with a hash


class ChapterError(RuntimeError):
    """A chapter raised while executing: the cell, the exception and its message."""


class Interrupted(KeyboardInterrupt):
    """The runner got SIGINT (Ctrl-C) or SIGTERM (a timeout, a cancelled job): a
    ``KeyboardInterrupt``, so papermill stops the kernel and every ``finally`` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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


def parameters(slug: str) -> dict[str, param_specs.Parameter]:
    """The chapter's parameters as its tagged parameters cell declares them (:mod:`lib.params`)."""
    cell = next(c for c in notebook(slug).cells if "parameters" in c.metadata.get("tags", []))
    return param_specs.declared(cell.source)


def describe_parameters(slug: str) -> str:
    """Human-readable list of a chapter's parameters, for ``make params`` and ``make run``."""
    lines = [f'Parameters of chapter {slug!r} (pass as PARAMS="-p NAME VALUE ..."):']
    for name, p in parameters(slug).items():
        allowed = f"{param_specs.describe(p)}: " if p.allowed else ""
        lines.append(f"  {name}: {p.type.__name__} = {p.default!r}  # {allowed}{p.help}")
    return "\n".join(lines)


def checked(
    slug: str, known: dict[str, param_specs.Parameter], values: dict[str, object]
) -> dict[str, object]:
    """``values`` checked against chapter ``slug``'s parameters ``known`` (:func:`parameters`),
    before any kernel starts: unknown names, wrong types and values outside the declared ranges or
    choices raise a one-line ``ValueError``. The given values are checked first, then the
    defaults, against bounds that name a given parameter. Bounds that need the model's config are
    left to the chapter's validation cell."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for chapter {slug!r}; allowed: {', '.join(known)}"
        )
    names = {name: p.default for name, p in known.items()} | values
    for name in sorted(known, key=lambda name: name not in values):
        try:
            param_specs.check(known[name], names[name], names)
        except ValueError as err:
            if name in values:
                raise
            raise ValueError(f"{err} (its default, which the values given rule out)") from None
    return values


def convert(known: dict[str, param_specs.Parameter], pairs: list[tuple[str, str]]) -> dict[str, object]:
    """Command-line ``(NAME, text)`` pairs typed by the annotations of the parameters ``known``
    (:func:`lib.params.convert`); unknown names pass through for :func:`checked` to refuse."""
    return {name: param_specs.convert(known[name], text) if name in known else text for name, text in pairs}


def stable(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without what changes from run to run when nothing else does: execution
    timestamps (papermill's and nbclient's) go, and each cell's random id becomes a digest of
    its source (numbered where sources repeat), so re-executing an unchanged chapter rewrites
    no line."""
    repeats: dict[str, int] = {}
    for cell in nb.cells:
        digest = hashlib.sha1(cell.source.encode()).hexdigest()[:12]
        repeats[digest] = repeats.get(digest, 0) + 1
        cell.id = digest if repeats[digest] == 1 else f"{digest}-{repeats[digest]}"
    for key in TIMING_KEYS:
        nb.metadata.get("papermill", {}).pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for key in TIMING_KEYS:
            cell.metadata.get("papermill", {}).pop(key, None)
    return nb


class _KernelManager(AsyncKernelManager):
    """A kernel whose own stderr goes to ``kernel.stderr`` beside its connection file, not to the
    terminal: libzmq can abort at the kernel's shutdown, after the notebook is written, with an
    assertion line that is no result of the run."""

    async def _async_start_kernel(self, **kw: object) -> None:
        with open(Path(self.connection_file).with_name("kernel.stderr"), "ab") as err:
            await super()._async_start_kernel(stderr=err, **kw)

    start_kernel = _async_start_kernel


def _kernel(folder: str) -> dict[str, object]:
    """papermill options for a quiet kernel whose sockets live in ``folder``: IPC where the OS has
    it (no TCP port, no loopback needed, no "running over TCP without encryption" warning), and a
    log level that hides the "KeyboardInterrupt caught in kernel" that jupyter_client's shutdown
    (an interrupt first) can provoke."""
    transport = "ipc" if os.name == "posix" else "tcp"
    connection = {"transport": transport, "connection_file": os.path.join(folder, "kernel.json")}
    return {
        "config": Config({"KernelManager": connection}),
        "kernel_manager_class": _KernelManager,
        "extra_arguments": ["--IPKernelApp.log_level=CRITICAL"],
    }


def _failed_validating(nb: nbformat.NotebookNode, exec_count: int) -> bool:
    """Whether cell ``[exec_count]`` of the executed ``nb`` is the one that validates the
    parameters: the first code cell after the parameters cell (and papermill's injected one)."""
    tags = [set(c.metadata.get("tags", [])) for c in nb.cells]
    last = max(
        (i for i, t in enumerate(tags) if t & {"parameters", "injected-parameters"}), default=len(tags)
    )
    cell = next((c for c in nb.cells[last + 1 :] if c.cell_type == "code"), None)
    return cell is not None and cell.execution_count == exec_count


def _publish(scratch: Path, dest: Path, src: Path) -> None:
    """Write the executed notebook ``scratch`` to ``dest`` (mode 0644) in one rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    done = nbformat.read(scratch, as_version=4)
    done.metadata.papermill.update(
        input_path=str(src.relative_to(ROOT)) if src.is_relative_to(ROOT) else str(src),
        output_path=str(dest.resolve().relative_to(ROOT) if dest.resolve().is_relative_to(ROOT) else dest),
    )
    fd, tmp = tempfile.mkstemp(suffix=".partial", prefix=f".{dest.name}-", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(stable(done), f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _shown(path: Path) -> str:
    return os.path.relpath(path) if path.is_absolute() and path.is_relative_to(Path.cwd()) else str(path)


def execute(
    slug: str, output: Path, params: dict[str, object] | None = None, failed: Path | None = None
) -> Path:
    """Execute chapter ``slug`` with ``params`` into ``output``, atomically.

    The kernel's working directory is ``book/`` (where nbval runs the notebooks too). Bad
    parameters raise a ``ValueError`` before the kernel starts, or from the chapter's validation
    cell, leaving nothing. A chapter that fails later raises :class:`ChapterError` naming the cell
    and the claim or exception, and keeps its notebook as ``failed`` (default
    ``<output>.FAILED.ipynb``); ``output`` is replaced only by a run that succeeds, which also
    removes an older ``failed``.
    """
    src = check_slug(slug)
    values = checked(slug, parameters(slug), params or {})
    failed = failed or output.with_name(f"{output.stem}.FAILED.ipynb")
    import papermill  # here, not at the top: refusing a bad value needs neither it nor nbclient (1 s)
    from nbclient.exceptions import DeadKernelError

    with tempfile.TemporaryDirectory(prefix="ibe-") as work:
        scratch = Path(work) / "run.ipynb"
        try:
            papermill.execute_notebook(
                notebook(slug),
                str(scratch),
                parameters=values,
                kernel_name="python3",
                cwd=str(BOOK_DIR),
                progress_bar=False,
                log_output=False,
                **_kernel(work),
            )
        except papermill.PapermillExecutionError as err:
            if err.ename == "ValueError" and _failed_validating(nbformat.read(scratch, 4), err.exec_count):
                raise ValueError(err.evalue) from None
            _publish(scratch, failed, src)
            what = "a claim failed" if err.ename == "ClaimError" else f"{err.ename} raised"
            raise ChapterError(
                f"chapter {slug!r}: {what} in cell [{err.exec_count}]: {err.evalue} "
                f"(notebook kept for inspection: {_shown(failed)})"
            ) from None
        except DeadKernelError:
            _publish(scratch, failed, src)
            raise ChapterError(
                f"chapter {slug!r}: the kernel died (killed by the system, most often for lack of "
                f"memory: lower the sizes, DTYPE or model) (notebook kept: {_shown(failed)})"
            ) from None
        _publish(scratch, output, src)
    failed.unlink(missing_ok=True)
    return output


def tag(params: dict[str, object]) -> str:
    """A file-name tag for a parameter set: ``NAME=value`` pairs sorted by name, e.g.
    ``DEVICE=cuda-MODEL_NAME=gpt2-small``; when a value has characters a file name should not
    (``/``, spaces) or the tag is longer than ``MAX_TAG``, a cleaned prefix and a hash of the exact
    values, so different parameter sets never share a name."""
    if not params:
        return "defaults"
    items = sorted(params.items())
    text = "-".join(f"{name}={value}" for name, value in items)
    safe = re.sub(r"[^A-Za-z0-9._=+-]+", "-", text)
    if safe == text and len(text) <= MAX_TAG:
        return text
    digest = hashlib.sha256(repr(items).encode()).hexdigest()[:12]
    return f"{safe[: MAX_TAG - 13]}-{digest}"


def _interrupt(signum: int, frame: object) -> None:
    # A signal to the process group also reaches the kernel: nbclient would log "Kernel died" and
    # asyncio its never-retrieved task on the way out. The runner says what happened in one line.
    logging.disable(logging.CRITICAL)
    raise Interrupted(signum)


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
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        if args.command == "build":
            for slug in toc_chapters():
                print(f"executing chapters/{slug}.py -> book/{slug}.ipynb", flush=True)
                execute(slug, BOOK_DIR / f"{slug}.ipynb", failed=OUTPUTS_DIR / f"{slug}.FAILED.ipynb")
        elif args.command == "params":
            print(describe_parameters(args.slug))
        else:
            known = parameters(args.slug)
            values = checked(args.slug, known, convert(known, args.parameter))
            print(describe_parameters(args.slug), flush=True)
            out = execute(args.slug, OUTPUTS_DIR / f"{args.slug}-{tag(values)}.ipynb", values)
            print(f"wrote {_shown(out)}")
    except (ValueError, ChapterError) as err:
        sys.exit(f"error: {err}")
    except Interrupted as stop:
        print(
            f"interrupted ({stop}): stopped the kernel; no notebook written, results unchanged",
            file=sys.stderr,
        )
        sys.exit(128 + stop.signum)


if __name__ == "__main__":
    main()
