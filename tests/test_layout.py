"""The library's shape: imports run one way through the layers, with no cycle; module sizes;
chapter references in docstrings that cannot go stale; tests that mirror lib/."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"

# Imports run from later layers to earlier ones (or within a layer), never back:
# chapters -> analyses -> patching and hooks -> models and zoo -> language and data -> env.
LAYERS: list[set[str]] = [
    {
        "lib",
        "lib.env",
        "lib.figures",
        "lib.memory",
        "lib.params",
        "lib.plots",
        "lib.claims",
        "lib.word_tokenizer",
    },
    {"lib.language", "lib.data", "lib.word_tasks"},
    {"lib.zoo", "lib.zoo.recipe", "lib.zoo.registry", "lib.zoo.store", "lib.zoo.training", "lib.models"},
    {"lib.hooks", "lib.patching", "lib.generation"},
    {
        "lib.attention",
        "lib.directions",
        "lib.lens",
        "lib.probes",
        "lib.residual",
        "lib.rl",
        "lib.saes",
        "lib.sinks",
        "lib.task_vectors",
    },
    {"lib.zoo.recipes", "lib.zoo.__main__"},  # recipes log analyses while training; loaded by name only
    {"lib.book"},
]
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of a module: that of the longest listed prefix."""
    for candidate in sorted((m for group in LAYERS for m in group), key=len, reverse=True):
        if module == candidate or module.startswith(candidate + "."):
            return next(i for i, group in enumerate(LAYERS) if candidate in group)
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it where it belongs")


def imports(path: Path) -> set[str]:
    """The lib modules a file imports (``from lib.pkg import mod`` counts as ``lib.pkg.mod``
    when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lib"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lib":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES}


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def test_imports_run_one_way_through_the_layers():
    backwards = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, deps in GRAPH.items()
        for b in deps
        if layer(b) > layer(a)
    ]
    assert not backwards, backwards


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep) :] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in GRAPH:
        if module not in state:
            visit(module, [module])


def test_the_cycle_check_can_fail():
    assert "lib.env" in GRAPH["lib.models"]
    GRAPH["lib.env"].add("lib.models")
    try:
        with pytest.raises(AssertionError, match="import cycle: lib.env -> lib.models -> lib.env"):
            test_the_import_graph_has_no_cycle()
    finally:
        GRAPH["lib.env"].discard("lib.models")


@pytest.mark.parametrize("module", list(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it by concept"


def normal(title: str) -> str:
    """'The residual stream' and 'Residual stream' name the same chapter."""
    return re.sub(r"^the ", "", " ".join(title.lower().split()))


def chapter_titles() -> dict[str, str]:
    titles = {}
    for path in (ROOT / "chapters").glob("*.py"):
        match = re.search(r"^# # (.+)$", path.read_text(), re.M)
        titles[normal(match.group(1))] = path.stem
    return titles


TITLES = chapter_titles()
REFERENCE = re.compile(r"chapters? '([^']+)'|chapters/([a-z_]+)\.py")


def docstrings(path: Path):
    """(object name or None for the module, docstring) for the module, its classes and functions."""
    tree = ast.parse(path.read_text())
    yield None, ast.get_docstring(tree) or ""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, ast.get_docstring(node) or ""


def uses_module(source: str, module: str) -> bool:
    """Whether a chapter imports ``module`` or a package holding it."""
    if re.search(rf"^from {re.escape(module)} import ", source, re.M):
        return True
    parts = module.split(".")
    for i in range(2, len(parts) + 1):
        package, name = ".".join(parts[: i - 1]), parts[i - 1]
        imported = re.findall(rf"^from {re.escape(package)} import (\([^)]*\)|.*)$", source, re.M)
        if any(re.search(rf"\b{name}\b", names) for names in imported) or f"{package}.{name}." in source:
            return True
    return False


@pytest.mark.parametrize("module", list(MODULES))
def test_chapter_references_in_docstrings_hold(module):
    """A docstring that names a chapter is telling the reader where the code is used: the chapter
    must exist, and must import the module (module docstrings) or call the routine (others)."""
    stale = []
    for name, doc in docstrings(MODULES[module]):
        for title, slug in REFERENCE.findall(doc):
            slug = slug or TITLES.get(normal(title))
            if slug is None or not (ROOT / "chapters" / f"{slug}.py").exists():
                stale.append(f"{name or module}: no chapter {title or slug!r}")
                continue
            source = (ROOT / "chapters" / f"{slug}.py").read_text()
            used = uses_module(source, module) if name is None else re.search(rf"\b{name}\b", source)
            if not used:
                stale.append(f"{name or module}: chapters/{slug}.py does not use it")
    assert not stale, sorted(set(stale))


def test_tests_mirror_the_library():
    """Every module ``lib/X.py`` has ``tests/lib/test_X.py``; every package ``lib/P/`` has
    ``tests/lib/P/``."""
    missing = []
    for module in MODULES:
        parts = module.split(".")[1:]
        if len(parts) == 1 and not MODULES[module].name == "__init__.py":
            expected = ROOT / "tests" / "lib" / f"test_{parts[0]}.py"
        elif parts:
            expected = ROOT / "tests" / "lib" / parts[0]
        else:
            continue
        if not expected.exists():
            missing.append(f"{module}: no {expected.relative_to(ROOT)}")
    assert not missing, sorted(set(missing))
