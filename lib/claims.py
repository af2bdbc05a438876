"""The claim check behind every check cell: a sentence, a condition, the values it rests on.

``check("the top induction head sits in layer 1", layer == 1, layer=layer, score=score)`` does
nothing when the condition holds and raises :class:`ClaimError` naming the claim and the values
when it does not, so a chapter that fails says which conclusion its numbers no longer support;
the book runner prints that sentence. Introduced in chapter 'Induction heads'
(chapters/induction_heads.py); every chapter's check cells use it.
"""

from __future__ import annotations

import torch


class ClaimError(AssertionError):
    """A conclusion of a chapter that the run's numbers contradict."""


def _show(value: object) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and len(value) > 16:
        return f"{type(value).__name__} of {len(value)}: {', '.join(_show(v) for v in value[:16])}, ..."
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def check(claim: str, condition: object, **values: object) -> None:
    """Raise :class:`ClaimError` with ``claim`` and ``values`` unless ``condition`` is true
    (a bool, or a one-element tensor)."""
    if not bool(condition):
        shown = ", ".join(f"{name}={_show(value)}" for name, value in values.items())
        raise ClaimError(f"{claim}: does not hold" + (f" ({shown})" if shown else ""))
