"""Checks for a chapter's parameters: one clear message naming the parameter, its value and
what is allowed, raised before any heavy work.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); every chapter's
validation cell uses it.
"""

from __future__ import annotations

from collections.abc import Iterable


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` must be an int in ``[low, high]`` (no upper bound when ``high`` is None)."""
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")
    return value


def check_choice(name: str, value: object, allowed: Iterable[object]) -> object:
    """``value`` must be one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {allowed}")
    return value
