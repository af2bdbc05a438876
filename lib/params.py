"""A chapter's parameters: declared once, in its tagged parameters cell, and checked from there by
the runner before a kernel starts (:mod:`lib.book`) and by the notebook's own validation cell.

Each parameter is one line of literal Python annotated with its type; its comment opens with what
is allowed, then a colon and what the parameter means (papermill's ``--help-notebook`` shows the
whole comment)::

    SEED: int = 0  # [0, 2**32 - 1]: seed of every random token sequence
    SEQ_LEN: int = 50  # [12, (n_ctx - 1) // 2]: length of each half of the repeated tokens
    DEVICE: str = "auto"  # {"auto", "cpu", "cuda"}: where the model runs
    WINDOW_LEN: int = 0  # 0 or [32, n_ctx]: length of the inputs (0: the model's context)
    MODEL_NAME: str = "induction-2l"  # a zoo organism or a TransformerLens name

``[low, high]`` is an inclusive range (of integers for an ``int``), ``{a, b}`` a set of choices, a
literal one value, and ``or`` joins alternatives; a comment without that prefix allows any value
of the type. Bounds are arithmetic on numbers, ``min``, ``max`` and ``or``, over the other
parameters (UPPER_CASE) and the model's config (lower case, e.g. ``n_ctx``). Without a config (the
runner, before any model is read) a bound that needs one is left to the notebook, whose
:func:`validate` checks everything once ``lib.models.model_config`` has given it.

Values are typed by the annotation: from the command line a ``str`` parameter takes the text as
given and any other reads it as a Python literal (``TRAIN=1`` is the int 1, refused for a bool).
Every refusal is one line naming the parameter, its value and what is allowed. This module
imports nothing heavy, so the runner refuses a bad value in about a second.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); every chapter's
parameters cell is written this way and its validation cell calls :func:`validate`.
"""

from __future__ import annotations

import ast
import io
import operator
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TYPES = {"int": int, "float": float, "str": str, "bool": bool}
TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "True or False"}
BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
FUNCTIONS = {"min": min, "max": max}


class Unknown(LookupError):
    """A bound names a value not known yet (the model's config, before the model is read)."""


@dataclass(frozen=True)
class Range:
    """``[low, high]``, inclusive; the bounds are expressions (see the module docstring)."""

    low: ast.expr
    high: ast.expr


@dataclass(frozen=True)
class Choices:
    """``{a, b, ...}``, or one literal value."""

    values: tuple[object, ...]

    def show(self) -> str:
        shown = [repr(v) for v in self.values]
        return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)

    def holds(self, value: object) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its type, default, what is allowed (alternatives; none: any value
    of the type) and its help text."""

    name: str
    type: type
    default: object
    allowed: tuple[Range | Choices, ...]
    help: str


def _is_parameter_line(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id.isupper()
        and node.value is not None
    )


def _alternatives(text: str) -> tuple[Range | Choices, ...] | None:
    """The alternatives of an allowed-values prefix, or None when ``text`` is not one."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.Or) else [tree]
    found: list[Range | Choices] = []
    for part in parts:
        if isinstance(part, ast.List) and len(part.elts) == 2:
            found.append(Range(*part.elts))
        elif isinstance(part, ast.Set) and all(isinstance(e, ast.Constant) for e in part.elts):
            found.append(Choices(tuple(e.value for e in part.elts)))
        elif isinstance(part, ast.Constant):
            found.append(Choices((part.value,)))
        else:
            return None
    return tuple(found)


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}


def declared(source: str) -> dict[str, Parameter]:
    """The parameters a parameters cell's ``source`` declares, in order. Raises ``ValueError``
    for a line that is not ``NAME: type = literal  # comment`` with a known type."""
    comments = _comments(source)
    found = {}
    for node in ast.parse(source).body:
        if not _is_parameter_line(node):
            raise ValueError(f"parameters cell line {node.lineno}: expected NAME: type = literal  # help")
        name, kind = node.target.id, ast.unparse(node.annotation)
        if kind not in TYPES:
            raise ValueError(f"parameter {name}: type {kind!r} is not one of {', '.join(TYPES)}")
        lines = range(node.lineno, node.end_lineno + 1)
        comment = next((comments[line] for line in lines if line in comments), "")
        head, colon, tail = comment.partition(": ")
        allowed = _alternatives(head) if colon else None
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(
                f"parameter {name}: the default {ast.unparse(node.value)} is not a literal"
            ) from None
        found[name] = Parameter(
            name,
            TYPES[kind],
            default,
            allowed or (),
            tail if allowed else comment,
        )
    return found


def _evaluate(node: ast.expr, names: Mapping[str, object], config: object | None) -> object:
    """A bound's value; raises :class:`Unknown` when it needs the config and there is none."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id.isupper() and node.id in names:
            return names[node.id]
        if node.id.isupper() or config is None:
            raise Unknown(node.id)
        return getattr(config, node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, names, config)
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        return BINARY[type(node.op)](
            _evaluate(node.left, names, config), _evaluate(node.right, names, config)
        )
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        value = None
        for part in node.values:
            value = _evaluate(part, names, config)
            if value:
                return value
        return value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        return FUNCTIONS[node.func.id](*(_evaluate(a, names, config) for a in node.args))
    raise ValueError(f"a parameter bound may not contain {ast.unparse(node)!r}")


def _bound(node: ast.expr, names: Mapping[str, object], config: object | None) -> tuple[object, str]:
    """A bound's value (None when unknown yet) and how to show it."""
    try:
        value = _evaluate(node, names, config)
    except Unknown:
        return None, ast.unparse(node)
    return value, str(value)


def _typed(kind: type, value: object) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _options(
    param: Parameter, names: Mapping[str, object], config: object | None
) -> list[tuple[str, Callable[[object], bool]]]:
    """What ``param`` allows, one (description, test) per alternative."""
    word = TYPE_WORDS[param.type]
    if not param.allowed:
        return [(word, lambda value: _typed(param.type, value))]
    found = []
    for alternative in param.allowed:
        if isinstance(alternative, Choices):
            found.append((alternative.show(), alternative.holds))
            continue
        (low, low_text), (high, high_text) = (
            _bound(b, names, config) for b in (alternative.low, alternative.high)
        )
        found.append(
            (
                f"{word} in [{low_text}, {high_text}]",
                lambda value, low=low, high=high: (
                    _typed(param.type, value)
                    and (low is None or value >= low)
                    and (high is None or value <= high)
                ),
            )
        )
    return found


def describe(param: Parameter) -> str:
    """What ``param`` allows, bounds shown as written: ``an integer in [12, (n_ctx - 1) // 2]``."""
    return " or ".join(text for text, _ in _options(param, {}, None))


def check(param: Parameter, value: object, names: Mapping[str, object], config: object | None = None) -> None:
    """Raise a one-line ``ValueError`` unless ``value`` has ``param``'s type and is allowed, with
    the other parameters' values in ``names`` and the model's ``config`` (None: bounds that need
    it are not checked)."""
    options = _options(param, names, config)
    if not any(test(value) for _, test in options):
        expected = " or ".join(text for text, _ in options)
        raise ValueError(f"{param.name}={value!r} is not allowed; expected {expected}")


def convert(param: Parameter, text: str) -> object:
    """A command-line value typed by ``param``'s annotation: the text itself for a ``str``, else
    the Python literal it spells (an int for a ``float`` becomes a float), else the text (which
    :func:`check` then refuses)."""
    if param.type is str:
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return float(value) if param.type is float and _typed(float, value) else value


def validate(namespace: Mapping[str, object], config: object | None = None) -> None:
    """Check every parameter of the running notebook, as declared in its parameters cell, against
    its value in ``namespace`` (the notebook's ``globals()``) and the model's ``config``.

    The declarations are read from IPython's input history (``In``): the latest cell made only of
    annotated UPPER_CASE assignments, so what is checked is what the reader sees above. Without
    history (nbval executes with ``store_history=False``) there is nothing to read and nothing is
    checked: nbval only re-runs the committed defaults.
    """
    history = namespace.get("In")
    if history is None:
        raise RuntimeError(
            "params.validate reads the parameters cell from IPython's In: run it in a notebook"
        )
    for source in reversed(history):
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        if body and all(_is_parameter_line(node) for node in body):
            break
    else:  # nbval executes cells without storing history; it re-runs the defaults, checked by the runner
        return
    declarations = declared(source)
    names = {name: namespace[name] for name in declarations}
    for name, param in declarations.items():
        check(param, names[name], names, config)
